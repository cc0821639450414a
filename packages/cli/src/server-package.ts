/**
 * The bus server is a package of its own (`@intent-bus/server`): a worker installs the CLI
 * and the SDK alone, with no native module and nothing to build (README, "Install"). Only
 * `serve`, `export` and `import` load it, and where it is missing they say what to install.
 */
import type * as ServerModule from '@intent-bus/server';

export const SERVER_PACKAGE = '@intent-bus/server';

export class MissingServerError extends Error {
  constructor() {
    super(
      `the bus server is not installed here: npm install ${SERVER_PACKAGE} beside intent-bus ` +
        `(-g for a global intent-bus), or run the bus with npx ${SERVER_PACKAGE}`,
    );
  }
}

export async function loadServer(): Promise<typeof ServerModule> {
  try {
    return await import('@intent-bus/server');
  } catch (err) {
    // The server itself missing, not one of its own dependencies (that is a broken install).
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_MODULE_NOT_FOUND' && e.message.includes(`'${SERVER_PACKAGE}'`)) {
      throw new MissingServerError();
    }
    throw err;
  }
}
