// Drives the `deno task cluster` dashboard in headless Chromium (Debian's `chromium` package).
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { REPO_ROOT, waitFor } from "./kv/node_process.ts";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/**
 * Where to keep the screenshot (e.g. `examples/dashboard.png`, the README's picture); a
 * temporary file otherwise.
 */
const SCREENSHOT_PATH = process.env.TSRAFT_DASHBOARD_SCREENSHOT;

function denoExecutable(): string {
  return (globalThis as { Deno?: { execPath(): string } }).Deno?.execPath() ?? "deno";
}

const skip = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} is missing: install it with \`apt-get install -y chromium\``;
if (skip) console.log(`dashboard test skipped: ${skip}`);

test(
  "the cluster dashboard shows a leader, its views and membership controls, serves KV requests, partitions and kills a node",
  {
    skip,
  },
  async () => {
    const { chromium } = await import("playwright-core");
    const shots = await mkdtemp(join(tmpdir(), "tsraft-dashboard-"));
    const output: string[] = [];
    const cluster: ChildProcess = spawn(denoExecutable(), [
      "run",
      "-A",
      "--unstable-kv",
      fileURLToPath(new URL("./cluster.ts", import.meta.url)),
      "--base-port",
      "0",
      "--dashboard-port",
      "0",
      "--",
      // Chromium competes for the CPU with three nodes; a longer timeout avoids spurious elections.
      "--election-timeout-ms",
      "500",
    ], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise((resolve) => cluster.once("exit", resolve));
    const collect = (chunk: Buffer) => output.push(chunk.toString("utf8"));
    cluster.stdout?.on("data", collect);
    cluster.stderr?.on("data", collect);
    let browser: Awaited<ReturnType<typeof chromium.launch>> | undefined;
    let pageText = (): Promise<string> => Promise.resolve("");
    try {
      const url = await waitFor(
        () => /Dashboard listening on (http:\/\/\S+)/.exec(output.join(""))?.[1],
        { timeoutMs: 20_000, message: "the dashboard URL" },
      );
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
      const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
      pageText = () => page.locator("body").innerText({ timeout: 2000 }).catch(String);
      await page.goto(url);
      const leaderText = () => page.locator("#leader").textContent();
      await waitFor(async () => /^Leader: n\d \(term \d+\)$/.test(await leaderText() ?? ""), {
        timeoutMs: 20_000,
        message: "the page names a leader",
      });
      assert.equal(await page.locator('.node[data-role="leader"]').count(), 1);
      assert.equal(await page.locator(".node").count(), 3);

      // A PUT through the request box; retried while an election is still settling.
      await page.fill("#kv-key", "greeting");
      await page.fill("#kv-value", "hello from chromium");
      await waitFor(async () => {
        await page.locator("#kv-out").evaluate((el) => el.textContent = "");
        await page.click("#kv-form button[type=submit]");
        const out = await waitFor(
          async () => await page.locator("#kv-out").textContent() || false,
          {
            message: "the PUT's answer",
          },
        );
        return out.includes("→ 200");
      }, { timeoutMs: 15_000, message: "PUT through the dashboard" });
      await page.click("#kv-get");
      await waitFor(
        async () => (await page.locator("#kv-out").textContent())?.includes("hello from chromium"),
        {
          message: "GET shows the value",
        },
      );

      // The views: per node indexes, the leader's followers, the log tails, the sparklines.
      const nodeIds = await page.locator(".node").evaluateAll((els) =>
        els.map((el) => el.getAttribute("data-id")!)
      );
      // Load through the dashboard's own KV route, so the sparklines have something to show.
      await page.evaluate(() => {
        const w = window as unknown as { loading: boolean };
        w.loading = true;
        void (async () => {
          for (let round = 0; w.loading; round++) {
            await Promise.all(
              Array.from(
                { length: 8 },
                (_, i) =>
                  fetch(`/api/kv/load-${i}`, { method: "PUT", body: String(round) })
                    .catch(() => {}),
              ),
            );
          }
        })();
      });
      await waitFor(async () => Number(await page.locator("#tput-now").textContent()) > 0, {
        timeoutMs: 15_000,
        message: "the throughput sparkline shows writes",
      });
      await waitFor(async () => Number(await page.locator("#lat-now").textContent()) > 0, {
        timeoutMs: 15_000,
        message: "the commit-latency sparkline shows a latency",
      });
      // Some seconds of history, so the sparklines (and the screenshot) show a line.
      await waitFor(
        async () =>
          ((await page.locator("#spark-tput polyline").getAttribute("points")) ?? "").split(" ")
            .length >= 10,
        { timeoutMs: 15_000, message: "ten points of throughput" },
      );
      const leaderCard = page.locator('.node[data-role="leader"]');
      await waitFor(
        async () => await leaderCard.locator("table.followers tr[data-peer]").count() === 2,
        { message: "the leader's card lists two followers" },
      );
      for (const row of await leaderCard.locator("table.followers tr[data-peer]").all()) {
        assert.ok(Number(await row.locator(".match").textContent()) > 0);
        assert.ok(Number(await row.locator(".lag").textContent()) >= 0);
      }
      for (const id of nodeIds) {
        const card = page.locator(`.node[data-id="${id}"]`);
        assert.match(await card.locator("dd.snapshot").textContent() ?? "", /^\d+$/);
        assert.match(await card.locator("dd.last").textContent() ?? "", /^\d+$/);
        const row = page.locator(`.logrow[data-id="${id}"]`);
        await waitFor(async () => await row.locator(".entry[data-term]").count() > 0, {
          message: `${id}'s log tail shows entries`,
        });
        assert.equal(await row.locator(".commit-line").count(), 1);
        assert.ok(Number(await row.getAttribute("data-commit")) > 0);
      }
      await waitFor(async () => await page.locator(".logrow .inflight").count() === 2, {
        message: "the followers' log rows count the leader's messages in flight",
      });
      // Transfer leadership to a follower from its card.
      const target = await page.locator('.node[data-role="follower"]').first().getAttribute(
        "data-id",
      );
      await page.click(`.node[data-id="${target}"] button[data-act="transfer"]`);
      await waitFor(async () => (await leaderText() ?? "").startsWith(`Leader: ${target} `), {
        timeoutMs: 15_000,
        message: `leadership moves to ${target}`,
      });
      // The log tails show the new term's entries (a second colour) under the load. (Read
      // again each time: a busy machine may hold one more election after the transfer.)
      await waitFor(async () => {
        const now = /^Leader: (n\d+) \(term (\d+)\)$/.exec(await leaderText() ?? "");
        if (now === null) return false;
        const row = page.locator(`.logrow[data-id="${now[1]}"]`);
        return await row.locator(`.entry[data-term="${now[2]}"]`).count() > 5;
      }, { timeoutMs: 15_000, message: "entries of the new term in the leader's log tail" });

      await page.evaluate(() => (window as unknown as { loading: boolean }).loading = false);

      const screenshot = SCREENSHOT_PATH ?? join(shots, "dashboard.png");
      await page.screenshot({ path: screenshot, fullPage: true });
      const png = await readFile(screenshot);
      assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE);
      assert.ok(png.length > 10_000, `screenshot is ${png.length} bytes`);
      console.log(`dashboard screenshot: ${screenshot} (${png.length} bytes)`);

      const viaOptions = () =>
        page.locator("#kv-node option").evaluateAll((els) =>
          els.map((el) => el.getAttribute("value")!)
        );
      assert.deepEqual(await viaOptions(), nodeIds);

      // Add a node: a new process joins through the leader; every card lists four members.
      await page.click("#add-node");
      await waitFor(async () => await page.locator(".node").count() === 4, {
        timeoutMs: 15_000,
        message: "a fourth card",
      });
      const added = (await page.locator(".node").evaluateAll((els) =>
        els.map((el) =>
          el.getAttribute("data-id")!
        )
      )).find((id) => !nodeIds.includes(id))!;
      await waitFor(async () => {
        const members = await page.locator(".node dd.members").allTextContents();
        return members.length === 4 && members.every((text) => text.split(" ").length === 4) &&
          await page.locator(`.node[data-id="${added}"]`).getAttribute("data-role") === "follower";
      }, { timeoutMs: 45_000, message: `${added} joins as a follower of a 4-member cluster` });
      await waitFor(async () => (await viaOptions()).includes(added), {
        message: `the request box offers ${added}`,
      });

      // Remove it again: its card and its "via" option go; three members remain.
      await page.click(`.node[data-id="${added}"] button[data-act="remove"]`);
      await waitFor(async () => {
        const members = await page.locator(".node dd.members").allTextContents();
        return await page.locator(".node").count() === 3 && !(await viaOptions()).includes(added) &&
          members.every((text) => text.split(" ").length === 3);
      }, { timeoutMs: 30_000, message: `${added} is removed` });

      // Partition a node and heal it from its card: the launcher calls the node's admin API
      // (loopback, with the token only the launcher knows).
      const partitioned = await page.locator('.node[data-role="follower"]').first()
        .getAttribute("data-id");
      await page.click(`.node[data-id="${partitioned}"] button[data-act="partition"]`);
      await waitFor(
        async () => await page.locator(`.node[data-id="${partitioned}"] .cut`).count() === 1,
        { timeoutMs: 15_000, message: `${partitioned} shows as partitioned` },
      );
      await page.click(`.node[data-id="${partitioned}"] button[data-act="heal"]`);
      await waitFor(
        async () => await page.locator(`.node[data-id="${partitioned}"] .cut`).count() === 0,
        { timeoutMs: 15_000, message: `${partitioned} shows as healed` },
      );

      // Kill the leader from its card; another node takes over and the card shows it down.
      const leaderId = await page.locator('.node[data-role="leader"]').getAttribute("data-id");
      await page.click(`.node[data-id="${leaderId}"] button[data-act="kill"]`);
      await waitFor(async () => {
        const down = await page.locator(`.node[data-id="${leaderId}"]`).getAttribute("data-role");
        const text = await leaderText() ?? "";
        return down === "down" && /^Leader: n\d/.test(text) &&
          !text.startsWith(`Leader: ${leaderId} `);
      }, { timeoutMs: 15_000, message: "a new leader after killing the old one" });
      await page.click(`.node[data-id="${leaderId}"] button[data-act="restart"]`);
      await waitFor(
        async () =>
          await page.locator(`.node[data-id="${leaderId}"]`).getAttribute("data-role") ===
            "follower",
        {
          timeoutMs: 15_000,
          message: "the restarted node rejoins as a follower",
        },
      );
    } catch (error) {
      throw new Error(
        `${String(error)}\n--- page\n${await pageText()}\n--- cluster output\n${output.join("")}`,
      );
    } finally {
      await browser?.close();
      cluster.kill("SIGTERM");
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
      cluster.kill("SIGKILL");
      await rm(shots, { recursive: true, force: true });
    }
  },
);
