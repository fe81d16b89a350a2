// @onflow/fcl 1.21 names types/fcl.d.ts in its package.json but does not ship it: the
// part of its API this page uses, typed.
declare module "@onflow/fcl" {
  export function config(values: Record<string, string | number>): unknown;
  export function arg(value: unknown, xform: unknown): unknown;
  export function mutate(opts: {
    cadence: string;
    args?: (arg: unknown, t: unknown) => unknown[];
    proposer?: unknown;
    payer?: unknown;
    authorizations?: unknown[];
    limit?: number;
  }): Promise<string>;
  export function authenticate(): Promise<{ addr?: string | null; loggedIn?: boolean | null }>;
  export function unauthenticate(): void;
  export const currentUser: {
    snapshot(): Promise<{ addr?: string | null; loggedIn?: boolean | null }>;
  };
  export const authz: unknown;
}
