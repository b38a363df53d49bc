// Lint: typescript-eslint's recommended rules, plus the rule that keeps workflow code
// deterministic: no Node built-ins, no side-effecting modules, activities only as types.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = builtinModules.flatMap((m) => [m, `node:${m}`]);

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.tools/', '.diskflow/', 'bin/', 'schemas/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The image lifecycle (activities/images/lifecycle.ts) is the one writer of image state and
    // volume legal marks: nothing else may reach the record writes it is built on.
    files: ['**/*.ts'],
    ignores: ['activities/images/lifecycle/**', 'activities/images/image-store.ts', 'activities/repository/**', 'test/**', 'workflows/**', 'api/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/image-store'],
              importNames: ['updateImage', 'createImage', 'writeVolume'],
              message: 'Image state and volume marks change only through activities/images/lifecycle/.',
            },
          ],
        },
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: 'CallExpression[callee.property.name=/^(writeRecord|createRecord|deleteRecord)$/]',
          message: 'Records are written only by activities/images/lifecycle/ (and the repository formats).',
        },
      ],
    },
  },
  {
    files: ['workflows/**/*.ts', 'api/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'Workflow code must be deterministic: no Node built-ins (api/ is imported by workflows too).' })),
          patterns: [
            {
              group: ['**/activities', '**/activities/**', '@temporalio/activity', '@temporalio/worker', '@temporalio/client'],
              allowTypeImports: true,
              message: 'Workflows reach activities through proxyActivities: import them as types only.',
            },
          ],
        },
      ],
    },
  },
);
