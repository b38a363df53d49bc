/**
 * The input this workflow was started with, as the workflow interceptor (interceptors.ts) saw
 * it arrive. Module state is this workflow's own: the SDK gives every workflow execution its
 * own copy of workflow modules.
 */
let input: { value: unknown } | undefined;

export function rememberInput(value: unknown): void {
  input = { value };
}

/** The workflow's input, or undefined when no interceptor recorded it (a worker set up without interceptors.ts). */
export function startedWith(): { value: unknown } | undefined {
  return input;
}
