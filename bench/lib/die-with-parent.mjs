// Preloaded (`node --import`) into every process the bench starts: when the bench's end
// of our standard input closes (the bench exited, crashed or was killed with SIGKILL),
// this process stops too, so no server outlives a run.
process.stdin.on('error', () => {});
process.stdin.on('close', () => {
  process.kill(process.pid, 'SIGTERM');
  // A server that does not stop cleanly within 5 s is stopped hard.
  setTimeout(() => process.exit(1), 5000).unref();
});
process.stdin.resume();
