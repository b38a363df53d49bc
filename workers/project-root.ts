/** The checkout this code runs from, whether compiled (dist/...) or run from source. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

function findProjectRoot(): string {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'scripts', 'bootstrap.sh'))) return dir;
  }
  throw new Error(`cannot find the diskflow checkout above ${__dirname}`);
}

export const PROJECT_ROOT = findProjectRoot();
