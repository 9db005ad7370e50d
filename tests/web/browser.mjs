// browser.mjs - Debian's Chromium for the browser tests (never Playwright's own download):
// headless, with Chromium's sandbox on unless running as root (where it cannot run).
import { chromium } from 'playwright-core';

export function launchChromium() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    chromiumSandbox: typeof process.getuid === 'function' && process.getuid() !== 0,
  });
}
