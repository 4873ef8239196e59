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
$token = Invoke-RestMethod -Method PUT -Uri "http://169.254.169.254/latest/api/token" -Headers @{"X-aws-ec2-metadata-token-ttl-seconds" = "300"}
$id = Invoke-RestMethod -Uri "http://169.254.169.254/latest/meta-data/instance-id" -Headers @{"X-aws-ec2-metadata-token" = $token}
$region = Invoke-RestMethod -Uri "http://169.254.169.254/latest/meta-data/placement/region" -Headers @{"X-aws-ec2-metadata-token" = $token}
aws ec2 create-tags --region $region --resources $id --tags "Key=ghr:job_started,Value=$([DateTimeOffset]::UtcNow.ToUnixTimeSeconds())"
if (Test-Path "C:\actions-runner\hooks\user-job-started.ps1") { & "C:\actions-runner\hooks\user-job-started.ps1" }
exit 0
'@ | Out-File -Encoding utf8 "$runnerDir\hooks\job-started.ps1"
@'
if (Test-Path "C:\actions-runner\hooks\user-job-completed.ps1") { & "C:\actions-runner\hooks\user-job-completed.ps1" }
$token = Invoke-RestMethod -Method PUT -Uri "http://169.254.169.254/latest/api/token" -Headers @{"X-aws-ec2-metadata-token-ttl-seconds" = "300"}
$id = Invoke-RestMethod -Uri "http://169.254.169.254/latest/meta-data/instance-id" -Headers @{"X-aws-ec2-metadata-token" = $token}
$region = Invoke-RestMethod -Uri "http://169.254.169.254/latest/meta-data/placement/region" -Headers @{"X-aws-ec2-metadata-token" = $token}
aws ec2 create-tags --region $region --resources $id --tags "Key=ghr:job_completed,Value=$([DateTimeOffset]::UtcNow.ToUnixTimeSeconds())"
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
