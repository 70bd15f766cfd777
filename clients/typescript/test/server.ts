// A live `admin-provisioner serve` for the tests: embedded defaults (SQLite + the built-in Cognito
// emulator), a temporary folder, free loopback ports. The binary is ADMIN_PROVISIONER_BIN, or else the
// repository's target/debug/admin-provisioner (`cargo build --bin admin-provisioner`).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

// build-test/test/server.js → the package, then the repository.
const pkg = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const repo = resolve(pkg, "..", "..");
export const packageDir = pkg;

export function binary(): string {
  const bin = process.env.ADMIN_PROVISIONER_BIN ?? join(repo, "target", "debug", "admin-provisioner");
  if (!existsSync(bin)) {
    throw new Error(`${bin} not found: run \`cargo build --bin admin-provisioner\` or set ADMIN_PROVISIONER_BIN`);
  }
  return bin;
}

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => ok(port));
    });
  });
}

export class Server {
  readonly baseUrl: string;
  private constructor(
    private readonly dir: string,
    private readonly env: NodeJS.ProcessEnv,
    private readonly child: ChildProcess,
    port: number,
  ) {
    this.baseUrl = `http://127.0.0.1:${port}`;
  }

  /** Starts `serve` and waits (at most 30 s) until `/healthz` answers. */
  static async start(): Promise<Server> {
    const dir = mkdtempSync(join(tmpdir(), "admin-provisioner-ts-"));
    const port = await freePort();
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const name of ["COGNITO_USER_POOL_ID", "COGNITO_CLIENT_ID", "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", "WEBHOOK_URL"]) {
      delete env[name];
    }
    Object.assign(env, {
      DATABASE_URL: `sqlite://${join(dir, "app.db")}`,
      COGNITO_EMULATOR_STATE: join(dir, "emulator.db"),
      MAILBOX_DIR: join(dir, "mailbox"),
      BIND_ADDR: `127.0.0.1:${port}`,
      // The emulator's own Cognito endpoint (where the server has one) on a free port too, never 9229.
      COGNITO_EMULATOR_ADDR: `127.0.0.1:${await freePort()}`,
      RESEND_COOLDOWN_SECS: "0",
      AUTH_RATE_LIMIT_PER_MINUTE: "1000",
      ADMIN_RATE_LIMIT_PER_MINUTE: "1000",
      RUST_LOG: "warn",
    });
    const log = createWriteStream(join(dir, "server.log"));
    const child = spawn(binary(), ["serve"], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    const server = new Server(dir, env, child, port);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) {
        throw new Error(`serve exited with ${child.exitCode}:\n${server.log()}`);
      }
      try {
        const res = await fetch(`${server.baseUrl}/healthz`);
        if (res.ok) return server;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await server.stop();
        throw new Error(`serve did not answer /healthz within 30 s:\n${server.log()}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Runs a CLI command on the same database, emulator state and mailbox; returns its stdout. */
  cli(...args: string[]): string {
    const out = spawnSync(binary(), args, { cwd: this.dir, env: this.env, encoding: "utf8" });
    if (out.status !== 0) throw new Error(`admin-provisioner ${args.join(" ")} exited ${out.status}: ${out.stderr}`);
    return out.stdout;
  }

  /** The temporary password of the newest invitation e-mailed to `email` (the emulator's mailbox). */
  temporaryPassword(email: string): string {
    const mailbox = join(this.dir, "mailbox");
    const names = existsSync(mailbox) ? readdirSync(mailbox).filter((n) => n.endsWith(".eml")).sort() : [];
    // File names start with the delivery time: newest last.
    for (const name of names.reverse()) {
      const text = readFileSync(join(mailbox, name), "utf8");
      const match = /^Your username is (\S+) and temporary password is (.+)\.\r?$/m.exec(text);
      if (match && match[1]?.toLowerCase() === email.toLowerCase() && match[2]) return match[2];
    }
    throw new Error(`no invitation to ${email} in ${mailbox}`);
  }

  /** How many invitations the mailbox holds for `email`. */
  invitations(email: string): number {
    const mailbox = join(this.dir, "mailbox");
    if (!existsSync(mailbox)) return 0;
    return readdirSync(mailbox)
      .filter((n) => n.endsWith(".eml"))
      .filter((n) => readFileSync(join(mailbox, n), "utf8").toLowerCase().includes(`your username is ${email.toLowerCase()} `))
      .length;
  }

  log(): string {
    const path = join(this.dir, "server.log");
    return existsSync(path) ? readFileSync(path, "utf8") : "";
  }

  /** Stops the server (SIGTERM, then SIGKILL after 10 s) and deletes its folder. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.once("exit", r));
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
