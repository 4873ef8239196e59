<powershell>
# Boots a Windows runner: the runner, the job hooks, then start-runner.ps1.
$ErrorActionPreference = "Continue"
Start-Transcript -Path "C:\UserData.log" -Append

${pre_install}

[Net.ServicePointManager]::SecurityProtocol = [Net.SecurityProtocolType]::Tls12
if (-not (Get-Command aws -ErrorAction SilentlyContinue)) {
  Invoke-WebRequest -Uri "https://awscli.amazonaws.com/AWSCLIV2.msi" -OutFile "C:\AWSCLIV2.msi"
  Start-Process msiexec.exe -Wait -ArgumentList "/i C:\AWSCLIV2.msi /qn"
  $env:Path += ";C:\Program Files\Amazon\AWSCLIV2"
}

$runnerDir = "C:\actions-runner"
New-Item -ItemType Directory -Force -Path "$runnerDir\hooks" | Out-Null
$token = Invoke-RestMethod -Method PUT -Uri "http://169.254.169.254/latest/api/token" -Headers @{"X-aws-ec2-metadata-token-ttl-seconds" = "300"}
$region = Invoke-RestMethod -Uri "http://169.254.169.254/latest/meta-data/placement/region" -Headers @{"X-aws-ec2-metadata-token" = $token}
if ("${runner_tarball_s3}" -ne "") {
  aws s3 cp "${runner_tarball_s3}" "$runnerDir\actions-runner.zip" --region $region
  Expand-Archive -Path "$runnerDir\actions-runner.zip" -DestinationPath $runnerDir -Force
  Remove-Item "$runnerDir\actions-runner.zip"
}

@'
# Job markers for scale-down (the Windows twin of job-marker.sh): `started` tags
# ghr:job_started with the time in unix milliseconds (and ghr:job_run with the job's run, for job
# rescue), `completed` tags ghr:job_completed with the
# start it closes. The instance profile's credentials only (a job's AWS_* variables are cleared),
# retried with backoff, logged to _diag\ghr-job-markers.log; never fails the job.
param([string]$Mode)
$diag = "C:\actions-runner\_diag\ghr-job-markers.log"
$state = "C:\actions-runner\hooks\.job-started"
function Log($message) {
  $line = "$((Get-Date).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ')) job-$Mode hook: $message"
  Write-Output $line
  try { New-Item -ItemType Directory -Force -Path (Split-Path $diag) | Out-Null; Add-Content -Path $diag -Value $line } catch {}
}
try {
  if ($Mode -eq "started") {
    $key = "ghr:job_started"
    $stamp = [DateTimeOffset]::UtcNow.ToUnixTimeMilliseconds()
    Set-Content -Path $state -Value $stamp
    $extra = @()
    if ($env:GITHUB_REPOSITORY -and $env:GITHUB_RUN_ID) { $extra = @("Key=ghr:job_run,Value=$($env:GITHUB_REPOSITORY)/$($env:GITHUB_RUN_ID)") }
  } else {
    $extra = @()
    $key = "ghr:job_completed"
    $stamp = if (Test-Path $state) { (Get-Content $state -TotalCount 1).Trim() } else { [DateTimeOffset]::UtcNow.ToUnixTimeMilliseconds() }
  }
  Get-ChildItem env: | Where-Object { $_.Name -like "AWS_*" -and $_.Name -ne "AWS_CA_BUNDLE" } | ForEach-Object { Remove-Item "env:$($_.Name)" }
  $env:AWS_CONFIG_FILE = "NUL"; $env:AWS_SHARED_CREDENTIALS_FILE = "NUL"; $env:AWS_MAX_ATTEMPTS = "1"
  $token = Invoke-RestMethod -Method PUT -Uri "http://169.254.169.254/latest/api/token" -Headers @{"X-aws-ec2-metadata-token-ttl-seconds" = "300"}
  $id = Invoke-RestMethod -Uri "http://169.254.169.254/latest/meta-data/instance-id" -Headers @{"X-aws-ec2-metadata-token" = $token}
  $region = Invoke-RestMethod -Uri "http://169.254.169.254/latest/meta-data/placement/region" -Headers @{"X-aws-ec2-metadata-token" = $token}
  for ($attempt = 1; $attempt -le 5; $attempt++) {
    aws ec2 create-tags --region $region --resources $id --tags "Key=$key,Value=$stamp" @extra
    if ($LASTEXITCODE -eq 0) { exit 0 }
    Log "attempt $attempt/5 to write $key failed"
    if ($attempt -lt 5) { Start-Sleep -Seconds ($attempt * 2) }
  }
  Log "could not write the job marker $key"
} catch {
  Log "could not write the job marker: $_"
}
exit 0
'@ | Out-File -Encoding utf8 "$runnerDir\hooks\job-marker.ps1"
@'
& "C:\actions-runner\hooks\job-marker.ps1" -Mode started
if (Test-Path "C:\actions-runner\hooks\user-job-started.ps1") { & "C:\actions-runner\hooks\user-job-started.ps1" }
exit 0
'@ | Out-File -Encoding utf8 "$runnerDir\hooks\job-started.ps1"
@'
if (Test-Path "C:\actions-runner\hooks\user-job-completed.ps1") { & "C:\actions-runner\hooks\user-job-completed.ps1" }
& "C:\actions-runner\hooks\job-marker.ps1" -Mode completed
exit 0
'@ | Out-File -Encoding utf8 "$runnerDir\hooks\job-completed.ps1"
@'
${user_job_started}
'@ | Out-File -Encoding utf8 "$runnerDir\hooks\user-job-started.ps1"
@'
${user_job_completed}
'@ | Out-File -Encoding utf8 "$runnerDir\hooks\user-job-completed.ps1"
@'
${start_runner}
'@ | Out-File -Encoding utf8 "$runnerDir\start-runner.ps1"

Add-Content -Path "$runnerDir\.env" -Value "ACTIONS_RUNNER_HOOK_JOB_STARTED=$runnerDir\hooks\job-started.ps1"
Add-Content -Path "$runnerDir\.env" -Value "ACTIONS_RUNNER_HOOK_JOB_COMPLETED=$runnerDir\hooks\job-completed.ps1"

${post_install}

& "$runnerDir\start-runner.ps1"
Stop-Transcript
</powershell>
