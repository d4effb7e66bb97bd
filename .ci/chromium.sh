# Source me: Debian's Chromium for the web UI's browser tests (Playwright drives it; Playwright's own
# browser download is skipped), and a folder for their screenshots (kept as CI artifacts).
if ! command -v chromium >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi
export MLPROJ_TEST_CHROMIUM
MLPROJ_TEST_CHROMIUM=$(command -v chromium)
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export MLPROJ_TEST_SCREENSHOTS
MLPROJ_TEST_SCREENSHOTS=$(pwd)/.ci/artifacts/screenshots
mkdir -p "$MLPROJ_TEST_SCREENSHOTS"
