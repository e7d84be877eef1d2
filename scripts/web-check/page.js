// Opens netforecast's page in Debian's headless chromium and reports what it
// received, one JSON line per stage on stdout:
//
//   node page.js check URL SHOT [MIN_WINDOWS]
//     {"stage":"live",...} once the charts hold MIN_WINDOWS windows from live
//     updates; then waits for a line "expect KIND AFTER" on stdin and reports
//     {"stage":"event",...} when the events table has a row of an event of
//     that kind that started at AFTER (Unix seconds) or later;
//     saves a screenshot to SHOT and ends with {"stage":"done",...}.
//   node page.js soak URL SECONDS
//     one {"stage":"sample",...} every 30 s: the page's JS heap and the resident
//     memory of every chromium process (browser, renderer, GPU, utility).
//   node page.js file PATH SHOT
//     opens a file:// report with the network disabled, checks it drew.
//
// CHROMIUM names the binary (default /usr/bin/chromium).
"use strict";
const fs = require("fs");
const puppeteer = require("puppeteer-core");

const [mode, target, arg3, arg4] = process.argv.slice(2);
const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");

// Proportional set size (shared pages split between their users, so the sum
// is what the processes together hold) of every process whose ancestry reaches
// `root`, by /proc; and the largest one's (the page's renderer).
function treePssMiB(root) {
  const parent = new Map();
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parent.set(Number(d), ppid);
    } catch (_) { /* gone */ }
  }
  let kb = 0, top = 0;
  for (const pid of parent.keys()) {
    let p = pid;
    while (p && p !== root) p = parent.get(p);
    if (p !== root) continue;
    try {
      const m = /Pss:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
      if (m) { kb += Number(m[1]); top = Math.max(top, Number(m[1])); }
    } catch (_) { /* gone */ }
  }
  return { total: kb / 1024, largest: top / 1024 };
}

async function stdinLine() {
  return new Promise((resolve) => {
    let buf = "";
    const on = (d) => {
      buf += d;
      const i = buf.indexOf("\n");
      if (i >= 0) { process.stdin.off("data", on); process.stdin.pause(); resolve(buf.slice(0, i).trim()); }
    };
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", on);
    process.stdin.resume();
  });
}

async function main() {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
      "--window-size=1280,1400", "--js-flags=--expose-gc"],
    defaultViewport: { width: 1280, height: 1400 },
  });
  const pid = browser.process().pid;
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    const nf = () => page.evaluate(() => Object.assign({}, window.nf));
    if (mode === "check") {
      const min = Number(arg4 || 200);
      await page.goto(target, { waitUntil: "load" });
      await page.waitForFunction((n) => window.nf && nf.windows >= n && nf.updates >= 5 && nf.redraws > 5,
        { timeout: 90000, polling: 250 }, min);
      const first = await nf();
      await new Promise((r) => setTimeout(r, 3000));
      const later = await nf();
      say({ stage: "live", first, later, errors });
      const cmd = await stdinLine();
      // "expect KIND [AFTER]": a row of KIND whose event started at AFTER (Unix s) or later.
      const [, kind, after] = cmd.split(" ");
      const t0 = Date.now();
      let found = null;
      try {
        const h = await page.waitForFunction((k, a) => {
          const rows = [...document.querySelectorAll(`#events tr.event.${k}.started`)];
          const r = rows.find((tr) => Number(tr.dataset.start) >= a);
          return r ? r.textContent : false;
        }, { timeout: 90000, polling: 100 }, kind, Number(after || 0));
        found = await h.jsonValue();
      } catch (_) { /* reported below */ }
      const active = await page.$$eval("#active li.alert", (l) => l.map((x) => x.textContent));
      say({ stage: "event", kind, found, waited_s: (Date.now() - t0) / 1000, active, nf: await nf() });
      await page.screenshot({ path: arg3, fullPage: true });
      // The same page on a phone's screen.
      await page.setViewport({ width: 390, height: 844, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
      await new Promise((r) => setTimeout(r, 1500));
      const narrow = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1);
      await page.screenshot({ path: arg3.replace(/\.png$/, "-phone.png") });
      say({ stage: "phone", fits: narrow });
      const m = await page.metrics();
      say({ stage: "done", nf: await nf(), js_heap_mib: m.JSHeapUsedSize / 1048576, chromium_pss_mib: treePssMiB(pid), errors });
    } else if (mode === "soak") {
      const secs = Number(arg3 || 600);
      // What chromium holds with an empty tab, for comparison.
      await page.goto("about:blank");
      await new Promise((r) => setTimeout(r, 2000));
      say({ stage: "baseline", chromium_pss_mib: treePssMiB(pid) });
      await page.goto(target, { waitUntil: "load" });
      await page.waitForFunction(() => window.nf && nf.windows > 0, { timeout: 60000 });
      const end = Date.now() + secs * 1000;
      for (;;) {
        const m = await page.metrics();
        say({ stage: "sample", t: Math.round((secs * 1000 - (end - Date.now())) / 1000), nf: await nf(),
          js_heap_mib: m.JSHeapUsedSize / 1048576, chromium_pss_mib: treePssMiB(pid), errors: errors.length });
        if (Date.now() >= end) break;
        await new Promise((r) => setTimeout(r, Math.min(30000, end - Date.now())));
      }
    } else if (mode === "file") {
      // No network at all: any request but the file itself fails.
      await page.setRequestInterception(true);
      const blocked = [];
      page.on("request", (r) => {
        if (r.url().startsWith("file:")) r.continue();
        else { blocked.push(r.url()); r.abort(); }
      });
      await page.goto("file://" + fs.realpathSync(target), { waitUntil: "load" });
      await page.waitForFunction(() => window.nf && nf.windows > 0 && nf.redraws > 0, { timeout: 30000 });
      const rows = await page.$$eval("#events tbody tr", (l) => l.length);
      const report = await page.$eval("#report", (e) => e.textContent.length);
      const canvases = await page.$$eval("canvas", (l) => l.length);
      await page.screenshot({ path: arg3, fullPage: true });
      say({ stage: "done", nf: await nf(), event_rows: rows, report_chars: report, canvases, blocked, errors });
    } else {
      throw new Error("mode: check, soak or file");
    }
  } finally {
    // A browser that does not close in 10 s is killed (process.exit follows).
    await Promise.race([browser.close(), new Promise((r) => setTimeout(r, 10000))]);
    try { browser.process().kill("SIGKILL"); } catch (_) { /* gone */ }
  }
}

main().then(() => process.exit(0), (e) => { say({ stage: "error", error: String(e && e.stack || e) }); process.exit(1); });
