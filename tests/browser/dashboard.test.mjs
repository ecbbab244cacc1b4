// The finance dashboard in headless Chromium: enter the finance key, see the chart drawn and
// the totals equal to the revenue report's JSON, save a screenshot.
//
// Needs a running exchange with some sales (see .ci/browser-test.sh):
//   PINGPOST_URL (default http://127.0.0.1:8080), FINANCE_KEY, SCREENSHOT (a .png path),
//   CHROMIUM (default /usr/bin/chromium).
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";

const base = process.env.PINGPOST_URL || "http://127.0.0.1:8080";
const key = process.env.FINANCE_KEY || "demo-finance-key-0001";
const screenshot = process.env.SCREENSHOT || "../../test-output/dashboard.png";
const today = new Date().toISOString().slice(0, 10);
const weekAgo = new Date(Date.now() - 6 * 86400e3).toISOString().slice(0, 10);

let browser;
let page;
const pageErrors = [];

async function report(groupBy) {
  const url = `${base}/v1/reports/revenue?from=${weekAgo}&to=${today}&group_by=${groupBy}&tz=UTC`;
  const response = await fetch(url, { headers: { Authorization: `Bearer ${key}` } });
  assert.equal(response.status, 200, await response.clone().text());
  return response.json();
}

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.setDefaultTimeout(15000);
  page.on("pageerror", (error) => pageErrors.push(error.message));
});

after(async () => {
  await browser?.close();
});


test("a wrong key is refused on the page", async () => {
  await page.goto(`${base}/dashboard`);
  await page.fill("#key", "not-a-finance-key");
  await page.click("#show");
  await page.waitForSelector("#status.error");
  assert.match(await page.textContent("#status"), /not known/);
  assert.equal(await page.isVisible("#report"), false);
});

test("the dashboard draws revenue by day and its totals equal the revenue report", async () => {
  const expected = await report("day");
  const byBuyer = await report("buyer");
  assert.ok(expected.totals.leads_sold > 0, "the exchange has sales to show");

  await page.goto(`${base}/dashboard`);
  await page.fill("#key", key);
  await page.fill("#from", weekAgo);
  await page.fill("#to", today);
  await page.fill("#tz", "UTC");
  await page.click("#show");
  await page.waitForSelector("#revenue-chart polyline[data-series='gross']");

  const chart = await page.$eval("#revenue-chart", (svg) => ({
    days: Number(svg.dataset.days),
    series: [...svg.querySelectorAll("polyline")].map((line) => ({
      name: line.dataset.series,
      points: line.getAttribute("points").trim().split(/\s+/).length,
      width: line.getBBox().width,
    })),
  }));
  assert.equal(chart.days, 7);
  assert.deepEqual(chart.series.map((s) => s.name), ["gross", "payouts", "margin", "net_margin"]);
  for (const line of chart.series) {
    assert.equal(line.points, 7, `${line.name} has a point per day`);
    assert.ok(line.width > 100, `${line.name} is drawn across the chart`);
  }

  for (const name of ["gross", "payouts", "margin", "net_margin", "leads_sold", "returns"]) {
    assert.equal(await page.textContent(`#total-${name}`), String(expected.totals[name]), name);
  }
  const buyers = await page.$$eval("#top-buyers tr", (rows) => rows.slice(1).map((r) => r.cells[0].textContent));
  assert.deepEqual(
    new Set(buyers),
    new Set(
      byBuyer.rows
        .slice()
        .sort((a, b) => Number(b.gross) - Number(a.gross) || a.group.localeCompare(b.group))
        .slice(0, 10)
        .map((r) => r.group),
    ),
    "the top buyers are the report's buyers",
  );
  assert.ok((await page.$$("#auctions tr")).length > 1, "auction statistics are shown");

  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });
});

test("a CSV download link saves the revenue report as CSV", async () => {
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.click("[data-csv='revenue'][data-group='buyer']"),
  ]);
  assert.match(download.suggestedFilename(), /^revenue-by-buyer-.*\.csv$/);
  const stream = await download.createReadStream();
  let text = "";
  for await (const chunk of stream) text += chunk;
  assert.ok(text.startsWith("group,leads_sold,gross,payouts,margin,returns,returned_amount,net_margin\r\n"));
  assert.match(text, /\r\ntotal,/);
});

// Last, after every page above has run its script.
test("the page's script ran without an error", () => {
  assert.deepEqual(pageErrors, []);
});
