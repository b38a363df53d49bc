/** Ctrl-C and SIGTERM stop a process cleanly; a second Ctrl-C stops it at once. */
export function onStopSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(130);
    stopping = true;
    process.stderr.write(`\n${signal}: stopping (again to force)\n`);
    stop().catch((error) => {
      process.stderr.write(`stop failed: ${(error as Error).message}\n`);
      process.exit(1);
    });
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
