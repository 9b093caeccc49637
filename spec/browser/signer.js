// Opens a sandbox SignUrl in headless Chromium (Debian's, driven over the DevTools protocol by puppeteer-core) at
// a phone's width, does what a person would, and prints what it saw as one JSON line. Used by
// spec/browser_spec.lua:
//   node spec/browser/signer.js CHROMIUM URL turn SHOT.png      not this signer's turn: read the page, try anyway
//   node spec/browser/signer.js CHROMIUM URL sign SHOT.png      read, sign without and then with the confirmation,
//                                                               switch to English
//   node spec/browser/signer.js CHROMIUM URL reject REASON      reject with a reason
'use strict';
const puppeteer = require('puppeteer-core');

const PHONE = { width: 375, height: 740, deviceScaleFactor: 1, isMobile: true, hasTouch: true };

// What the page shows: each contract's codes (data attributes), words, image and layout, and the page's state.
async function look(page) {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const flows = [...document.querySelectorAll('.flow')].map(s => {
      const signer = s.querySelector('.signer-status');
      const img = s.querySelector('img.preview');
      const box = signer ? signer.getBoundingClientRect() : null;
      return {
        flow: s.dataset.flow, flowStatus: s.dataset.flowStatus, signerStatus: s.dataset.signerStatus,
        flowWord: s.querySelector('.flow-status').textContent, signerWord: signer ? signer.textContent : null,
        document: s.querySelector('a.document').href,
        image: img ? { loaded: img.complete && img.naturalWidth > 0, width: img.naturalWidth,
          shownRight: img.getBoundingClientRect().right } : null,
        signerRight: box ? box.right : null, turn: (s.querySelector('.turn') || {}).textContent || null,
      };
    });
    const q = sel => document.querySelector(sel);
    return {
      lang: document.documentElement.lang, title: document.title, width,
      scrollWidth: document.documentElement.scrollWidth,
      notice: q('#notice') ? { kind: q('#notice').dataset.kind, text: q('#notice').textContent } : null,
      notYourTurn: q('#not-your-turn') ? q('#not-your-turn').textContent : null,
      sign: q('#sign') ? { disabled: q('#sign').disabled, text: q('#sign').textContent } : null,
      agree: q('#agree') ? { checked: q('#agree').checked, text: q('#agree').parentElement.textContent } : null,
      buttons: [...document.querySelectorAll('button')].map(b => b.id),
      text: document.body.innerText, url: location.href, flows,
    };
  });
}

async function documents(page, flows) {
  const out = [];
  for (const f of flows) {
    out.push(await page.evaluate(async href => {
      const res = await fetch(href);
      const bytes = new Uint8Array(await res.arrayBuffer());
      return { status: res.status, type: res.headers.get('content-type'),
        magic: String.fromCharCode(...bytes.slice(0, 5)) };
    }, f.document));
  }
  return out;
}

// Waits until every preview image has finished loading (or failed).
async function imagesSettled(page) {
  await page.waitForFunction(() => [...document.images].every(i => i.complete), { timeout: 30000 });
}

async function main() {
  const [chromium, url, mode, arg] = process.argv.slice(2);
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    // --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport(PHONE);
    const first = await page.goto(url, { waitUntil: 'load' });
    await imagesSettled(page);
    const out = { status: first.status(), before: await look(page) };
    if (mode === 'turn') {
      if (arg) await page.screenshot({ path: arg, fullPage: true });
      // try anyway: tick and submit the form as a script could, past the disabled controls
      await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.evaluate(() => {
        const form = document.querySelector('#sign').form;
        document.querySelector('#agree').disabled = false;
        document.querySelector('#agree').checked = true;
        form.submit();
      })]);
      out.after = await look(page);
    } else if (mode === 'sign') {
      out.documents = await documents(page, out.before.flows);
      // without the confirmation the browser does not send the form (the box is required) ...
      await page.click('#sign');
      out.unconfirmed = await page.evaluate(() => ({
        valueMissing: document.querySelector('#agree').validity.valueMissing,
        formValid: document.querySelector('#sign').form.checkValidity(),
      }));
      // ... and the server refuses a form sent without it all the same
      out.unconfirmed.server = await page.evaluate(async () => {
        const form = document.querySelector('#sign').form;
        const body = new URLSearchParams({ token: form.token.value });
        const res = await fetch(form.action, { method: 'POST', body });
        return { url: res.url, text: await res.text() };
      });
      out.unconfirmed.page = await look(page);
      await page.click('#agree');
      await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#sign')]);
      await imagesSettled(page);
      out.after = await look(page);
      if (arg) await page.screenshot({ path: arg, fullPage: true });
      await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#lang')]);
      out.english = await look(page);
    } else {
      await page.type('#reason', arg || 'rejected in the browser test');
      await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#reject')]);
      out.after = await look(page);
    }
    console.log(JSON.stringify(out));
  } finally {
    await browser.close();
  }
}

main().catch(err => { console.error(err && err.stack || String(err)); process.exit(1); });
