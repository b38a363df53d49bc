// Lint: typescript-eslint's recommended rules, plus the rule that keeps workflow code
// deterministic: no Node built-ins, no side-effecting modules, activities only as types.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';
import { dirname, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const nodeBuiltins = builtinModules.flatMap((m) => [m, `node:${m}`]);
const ROOT = dirname(fileURLToPath(import.meta.url));

// Layers (docs/ARCHITECTURE.md, "Layers"): the folders each folder may import from, low to high.
// Arrows point one way: nothing imports a folder above it or beside it. test/, bench/ and
// scripts/ sit outside and may use any layer.
export const LAYERS = {
  api: [],
  config: ['api'],
  workflows: ['api'], // and activities/, as types only: workflows reach them through proxyActivities
  activities: ['api'],
  workers: ['api', 'config', 'activities', 'workflows'],
  client: ['api', 'config'],
  cli: ['api', 'config', 'client', 'workers'],
};
const TYPE_ONLY = { workflows: ['activities'] };

const layersRule = {
  meta: { type: 'problem', schema: [], messages: { above: '{{from}}/ may not import {{to}}/ (allowed: {{allowed}}; see LAYERS in eslint.config.mjs and docs/ARCHITECTURE.md, "Layers").' } },
  create(context) {
    const file = relative(ROOT, context.filename);
    const from = file.split(sep)[0];
    if (!(from in LAYERS)) return {};
    const check = (node, source, typeOnly) => {
      if (typeof source !== 'string' || !source.startsWith('.')) return;
      const to = relative(ROOT, resolve(dirname(context.filename), source)).split(sep)[0];
      if (to === from || !(to in LAYERS)) return;
      if (LAYERS[from].includes(to) || (typeOnly && TYPE_ONLY[from]?.includes(to))) return;
      context.report({ node, messageId: 'above', data: { from, to, allowed: [...LAYERS[from], ...(TYPE_ONLY[from] ?? []).map((t) => `${t} (types)`)].join(', ') || 'none' } });
    };
    const typeOnlyImport = (node) => node.importKind === 'type' || (node.specifiers.length > 0 && node.specifiers.every((s) => s.importKind === 'type'));
    return {
      ImportDeclaration: (node) => check(node, node.source.value, typeOnlyImport(node)),
      ExportNamedDeclaration: (node) => node.source && check(node, node.source.value, node.exportKind === 'type'),
      ExportAllDeclaration: (node) => check(node, node.source.value, node.exportKind === 'type'),
      ImportExpression: (node) => check(node, node.source.value, false),
      CallExpression: (node) => {
        if (node.callee.type === 'Identifier' && node.callee.name === 'require' && node.arguments[0]?.type === 'Literal') check(node, node.arguments[0].value, false);
      },
    };
  },
};

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.tools/', '.diskflow/', 'bin/', 'schemas/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    plugins: { diskflow: { rules: { layers: layersRule } } },
    rules: {
      'diskflow/layers': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The image lifecycle (activities/images/lifecycle/) is the one writer of image state and
    // volume legal marks: nothing else may reach the record writes it is built on.
    files: ['**/*.ts'],
    // activities/srm/forwarding-repository.ts passes a format's record writes through (to the SRM or to the format).
    ignores: ['activities/images/lifecycle/**', 'activities/images/image-store.ts', 'activities/repository/**', 'activities/srm/forwarding-repository.ts', 'test/**', 'workflows/**', 'api/**'],
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
