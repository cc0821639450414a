import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'test-artifacts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
  {
    // The dashboard: plain browser scripts served as they are (no build step).
    files: ['packages/server/dashboard/**/*.js'],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    // The SDK (and the protocol it ships) runs in browsers, Deno and Bun as well as Node.
    files: ['packages/sdk/src/**/*.ts', 'packages/protocol/src/**/*.ts'],
    ignores: ['packages/sdk/src/node.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex:
                '^(node:|fs$|path$|os$|crypto$|http$|https$|net$|child_process$|util$|stream$)',
              message: 'No Node-only imports in the SDK core: use src/node.ts.',
            },
          ],
        },
      ],
    },
  },
);
