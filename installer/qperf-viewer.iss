; Inno Setup 6 script: Windows installer of the qperf-viewer one-folder bundle.
; Outline, not built on this project's Linux machines: build the bundle on Windows first
; (installer\README.md, "Windows"), then from the repository root:
;     iscc /DAppVersion=0.1.0 installer\qperf-viewer.iss
; -> dist\qperf-viewer-0.1.0-setup.exe
; Silent install for software deployment (SCCM, Intune, GPO):
;     qperf-viewer-0.1.0-setup.exe /VERYSILENT /SUPPRESSMSGBOXES /NORESTART /ALLUSERS
; The program folder (Program Files) stays read-only: the app writes settings, caches and logs
; to %LOCALAPPDATA%\qperf-viewer only.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif

[Setup]
AppId={{6F3C2E0A-8B1D-4C55-9A7E-2D4B7F1C9E31}
AppName=qperf-viewer
AppVersion={#AppVersion}
AppPublisher=qperf-viewer contributors
AppComments=Quantitative myocardial perfusion MRI review and reporting. Research use only; not a medical device.
DefaultDirName={autopf}\qperf-viewer
DefaultGroupName=qperf-viewer
DisableProgramGroupPage=yes
; Administrators install for all users into Program Files; others may choose a per-user install.
PrivilegesRequired=admin
PrivilegesRequiredOverridesAllowed=dialog commandline
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
SourceDir=..
OutputDir=dist
OutputBaseFilename=qperf-viewer-{#AppVersion}-setup
SetupIconFile=resources\icons\qperf-viewer.ico
UninstallDisplayIcon={app}\qperf-viewer.exe
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
; LicenseFile=LICENSE   (once the repository has a LICENSE file; the project is Apache-2.0)
; Code signing (hospital IT usually requires it): configure a sign tool named "signtool" in
; the Inno Setup IDE / iscc, e.g. signtool sign /fd SHA256 /tr http://timestamp.example /td SHA256 /f cert.pfx $f
; SignTool=signtool

[Files]
; The whole PyInstaller folder: qperf-viewer.exe (GUI), qperf-viewer-cli.exe (console) and _internal\
Source: "dist\qperf-viewer\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\qperf-viewer"; Filename: "{app}\qperf-viewer.exe"; Parameters: "gui"
Name: "{autodesktop}\qperf-viewer"; Filename: "{app}\qperf-viewer.exe"; Parameters: "gui"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop shortcut"; Flags: unchecked

[Registry]
; Optional: put the console launcher on PATH for scripted use (qperf-viewer-cli analyze DIR --out OUT).
Root: HKA; Subkey: "Software\Microsoft\Windows\CurrentVersion\App Paths\qperf-viewer-cli.exe"; ValueType: string; ValueData: "{app}\qperf-viewer-cli.exe"; Flags: uninsdeletekey

[Run]
Filename: "{app}\qperf-viewer.exe"; Parameters: "gui"; Description: "Start qperf-viewer"; Flags: nowait postinstall skipifsilent
