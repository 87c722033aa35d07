// Drive the web chat UI in headless Chromium: load the page, send a message, see a streamed
// answer rendered, stop a generation, regenerate; save a screenshot.
// Usage: node webui.mjs BASE_URL SCREENSHOT_DIR
import { chromium } from "playwright-core";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, outDir] = process.argv.slice(2);
const userDataDir = mkdtempSync(join(tmpdir(), "ferrite-webui-"));
const ctx = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"],
  viewport: { width: 1100, height: 700 },
});
// Network rule: the page may only talk to the server under test.
await ctx.route("**/*", (r) => (r.request().url().startsWith(base) ? r.continue() : r.abort()));
const page = ctx.pages()[0] || (await ctx.newPage());
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
const fail = (m) => { console.error("FAIL: " + m); process.exit(1); };

await page.goto(base + "/", { timeout: 30000 });
await page.waitForFunction(() => document.getElementById("model").textContent.includes(".gguf") || document.getElementById("model").textContent.length > 2, null, { timeout: 15000 });

// 1. Send a message; a streamed answer appears and finishes.
await page.fill("#input", "Write a haiku about the sea.");
await page.click("#send");
await page.waitForSelector(".msg.assistant", { timeout: 10000 });
await page.waitForFunction(() => !document.body.classList.contains("busy"), null, { timeout: 120000 });
const answer = await page.textContent(".msg.assistant .body");
if (!answer || answer.trim().length < 3) fail("empty answer: " + JSON.stringify(answer));
const stats = await page.textContent("#stats");
if (!/tokens\/s/.test(stats)) fail("no tokens/s shown: " + stats);
const saved = await page.evaluate(() => JSON.parse(localStorage.getItem("ferrite.convs")));
if (!saved || saved[0].messages.length !== 2) fail("conversation not stored in localStorage");
console.log("answer:", JSON.stringify(answer.slice(0, 80)), "|", stats);

// 2. Markdown with code blocks renders, and HTML is escaped (rendered by the page's own renderer).
const md = await page.evaluate(() => markdown("**bold** <script>x</script>\n```js\nlet a = 1 < 2;\n```"));
if (!md.includes("<strong>bold</strong>") || !md.includes("&lt;script&gt;") || !md.includes("<pre><code class=\"lang-js\">let a = 1 &lt; 2;</code></pre>"))
  fail("markdown: " + md);

// 3. Stop a generation: a long answer, stopped after the first tokens arrive.
await page.evaluate(() => { settings.max_tokens = 400; });
await page.fill("#input", "Count from 1 to 200, one number per line.");
await page.click("#send");
await page.waitForFunction(() => document.querySelectorAll(".msg.assistant .body")[1]?.textContent.length > 5, null, { timeout: 60000 });
if (!(await page.isVisible("#stop"))) fail("stop button not visible while generating");
await page.click("#stop");
await page.waitForFunction(() => !document.body.classList.contains("busy"), null, { timeout: 10000 });
const stopped = await page.textContent("#stats");
if (!stopped.startsWith("stopped")) fail("stop not reported: " + stopped);

// 4. Regenerate replaces the last answer.
await page.evaluate(() => { settings.max_tokens = 16; });
await page.click("#regen");
await page.waitForFunction(() => !document.body.classList.contains("busy"), null, { timeout: 60000 });
const n = await page.evaluate(() => document.querySelectorAll(".msg").length);
if (n !== 4) fail("after regenerate expected 4 messages, got " + n);

await page.screenshot({ path: join(outDir, "webui.png") });
if (errors.length) fail("page errors: " + errors.join("; "));
await ctx.close();
console.log("webui: 4 checks passed; screenshot " + join(outDir, "webui.png"));
