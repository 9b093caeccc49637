// Opens a sandbox SignUrl in headless Chromium (Debian's, driven over the DevTools protocol by puppeteer-core),
// reads the page, fetches each contract's PDF link, presses "Sign all" or "Reject", and prints what it saw as
// one JSON line. Used by spec/browser_spec.lua:
//   node spec/browser/signer.js CHROMIUM URL sign|reject [REASON] [SCREENSHOT.png]
'use strict';
const puppeteer = require('puppeteer-core');

async function rows(page) {
  return page.$$eval('tr[data-flow]', trs => trs.map(tr => ({
    flow: tr.getAttribute('data-flow'),
    name: tr.cells[0].textContent,
    flowStatus: tr.querySelector('.flow-status').textContent,
    signerStatus: tr.querySelector('.signer-status').textContent,
    document: tr.querySelector('a.document').href,
  })));
}

async function main() {
  const [chromium, url, decision, reason, screenshot] = process.argv.slice(2);
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    // --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
  try {
    const page = await browser.newPage();
    const first = await page.goto(url, { waitUntil: 'load' });
    const before = await rows(page);
    const documents = [];
    for (const r of before) {
      documents.push(await page.evaluate(async href => {
        const res = await fetch(href);
        const bytes = new Uint8Array(await res.arrayBuffer());
        return { status: res.status, type: res.headers.get('content-type'),
          magic: String.fromCharCode(...bytes.slice(0, 5)) };
      }, r.document));
    }
    if (decision === 'reject') await page.type('#reason', reason || 'rejected in the browser test');
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#' + decision)]);
    const after = await rows(page);
    const done = await page.$eval('#done', e => e.textContent).catch(() => null);
    const buttons = await page.$$eval('button', bs => bs.map(b => b.id));
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    console.log(JSON.stringify({ status: first.status(), title: await page.title(), before, documents, after,
      done, buttons, url: page.url() }));
  } finally {
    await browser.close();
  }
}

main().catch(err => { console.error(err && err.stack || String(err)); process.exit(1); });
