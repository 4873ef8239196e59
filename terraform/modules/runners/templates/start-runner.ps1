# Configures and starts this instance's GitHub Actions runner (Windows), as start-runner.sh does.
$ErrorActionPreference = "Stop"
Start-Transcript -Path "C:\runner-startup.log" -Append
$runnerDir = "C:\actions-runner"
$token = Invoke-RestMethod -Method PUT -Uri "http://169.254.169.254/latest/api/token" -Headers @{"X-aws-ec2-metadata-token-ttl-seconds" = "21600"}
function Meta($path) { Invoke-RestMethod -Uri "http://169.254.169.254/latest/meta-data/$path" -Headers @{"X-aws-ec2-metadata-token" = $token} }
$instanceId = Meta "instance-id"
$region = Meta "placement/region"
$configPath = Meta "tags/instance/ghr:ssm_config_path"
$namePrefix = try { Meta "tags/instance/ghr:runner_name_prefix" } catch { "" }

function Terminate() {
  Start-Sleep -Seconds 10
  aws ec2 terminate-instances --instance-ids $instanceId --region $region
}

try {
  $parameters = aws ssm get-parameters-by-path --path $configPath --region $region --query "Parameters[*].[Name,Value]" --output json | ConvertFrom-Json
  function Setting($name) { ($parameters | Where-Object { $_[0] -eq "$configPath/$name" } | Select-Object -First 1)[1] }
  $agentMode = Setting "agent_mode"
  $jit = Setting "enable_jit_config"
  $tokenPath = Setting "token_path"
  $disableDefaultLabels = Setting "disable_default_labels"

  $config = $null
  for ($i = 0; $i -lt 900 -and -not $config; $i++) {
    $config = aws ssm get-parameter --name "$tokenPath/$instanceId" --with-decryption --region $region --query "Parameter.Value" --output text 2>$null
    if (-not $config -or $config -eq "None") { $config = $null; Start-Sleep -Seconds 1 }
  }
  if (-not $config) { throw "no runner configuration" }
  aws ssm delete-parameter --name "$tokenPath/$instanceId" --region $region

  Set-Location $runnerDir
  if ($jit -eq "true" -and $agentMode -eq "ephemeral") {
    & .\run.cmd --jitconfig $config
    Terminate
    exit 0
  }
  # The stored arguments are shell-quoted (single quotes): split them the same way.
  $arguments = [System.Collections.Generic.List[string]]::new()
  foreach ($m in [regex]::Matches($config, "'((?:[^']|'\\'')*)'|(\S+)")) {
    if ($m.Groups[1].Success) { $arguments.Add($m.Groups[1].Value.Replace("'\''", "'")) } else { $arguments.Add($m.Groups[2].Value) }
  }
  $extra = @()
  if ($disableDefaultLabels -eq "true") { $extra += "--no-default-labels" }
  & .\config.cmd @extra --unattended --name "$namePrefix$instanceId" --work _work @arguments
  $runner = Get-Content "$runnerDir\.runner" | ConvertFrom-Json
  aws ec2 create-tags --region $region --resources $instanceId --tags "Key=ghr:github_runner_id,Value=$($runner.agentId)"
  if ($agentMode -eq "ephemeral") {
    & .\run.cmd
    Terminate
  } else {
    $action = New-ScheduledTaskAction -WorkingDirectory $runnerDir -Execute "run.cmd"
    $trigger = New-ScheduledTaskTrigger -AtStartup
    Register-ScheduledTask -TaskName "runnertask" -Action $action -Trigger $trigger -User System -RunLevel Highest -Force
    Start-ScheduledTask -TaskName "runnertask"
  }
} catch {
  Write-Output "start-runner failed: $_"
  Terminate
}
Stop-Transcript
