/**
 * A real headless Chromium for the browser tests: Debian's `chromium` package, driven by playwright-core
 * (which downloads no browser of its own). Without /usr/bin/chromium the browser tests are skipped with
 * one printed line, except under CI (CI=true), where it is a failure: `.ci/run` installs it.
 */
import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";

export const CHROMIUM_PATH = "/usr/bin/chromium";
export const CHROMIUM_INSTALL_HINT = `${CHROMIUM_PATH} not found: install it (Debian/Ubuntu: apt-get install chromium)`;

export function chromiumAvailability(): { path: string } | { skipReason: string } {
  if (existsSync(CHROMIUM_PATH)) return { path: CHROMIUM_PATH };
  if (process.env.CI) throw new Error(`CI is set and ${CHROMIUM_INSTALL_HINT}`);
  return { skipReason: CHROMIUM_INSTALL_HINT };
}

/** Launches headless Chromium with the flags a container needs (no sandbox, no GPU, no /dev/shm). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"],
  });
}
