// Type-aware linting for the packages' sources, tests and examples and the benchmarks; plain JS
// rules for the build scripts; and the line between the two packages.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      '**/dist/**',
      '**/.dist-next/**',
      '**/.dist-old/**',
      '**/node_modules/**',
      'data/**',
      '.scratch/**',
      'test-output/**',
    ],
  },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [...tseslint.configs.strictTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      // node:test's describe/it return promises the runner itself tracks.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] },
          ],
        },
      ],
    },
  },
  {
    // The service's HTTP tests read JSON bodies loosely (`answer.json.data.user.email`): typing
    // every answer would repeat API.md in test code without checking anything more.
    files: ['packages/server/test/service/**/*.ts', 'packages/server/test/helpers/client.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
    },
  },
  {
    // The library never reaches into the server.
    files: ['packages/gatehouse/src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/server/**', 'gatehouse-server', 'gatehouse-server/*'],
              message: 'The library never imports the server.',
            },
            {
              group: ['gatehouse', 'gatehouse/*'],
              message: 'Inside the library, import its modules by relative path.',
            },
          ],
        },
      ],
    },
  },
  {
    // The server uses the library through its public exports only.
    files: ['packages/server/src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/gatehouse/src/**', '**/gatehouse/dist/**', '../../gatehouse/**'],
              message:
                "The server imports the library only as 'gatehouse', 'gatehouse/fastify' or 'gatehouse/express'.",
            },
            {
              group: ['gatehouse/*', '!gatehouse/fastify', '!gatehouse/express'],
              message:
                "The library's public entry points are 'gatehouse', 'gatehouse/fastify' and 'gatehouse/express'.",
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly' },
    },
  },
);
