/**
 * What a fix will do, precisely enough to be verified against the repository when it runs:
 * each plan names the objects it touches and the state (generation) it saw them in. This is
 * what the opaque `data` of a Fix carries, signed (fix-data.ts).
 */
import type { FixType } from '../../api/image-status';

interface Touches {
  /** Images the fix changes, with the generation they had when the check saw them. */
  images: Record<string, number>;
}

/** A fix that must run on one host: the one serving the image to its VM (its daemon does the work). */
interface OnHost {
  onHost?: string | null;
}

export type FixPlan =
  | ({ type: 'clean'; action: 'removed-image'; imageId: string; volumes: string[] } & Touches)
  | ({ type: 'clean'; action: 'orphans'; volumes: string[]; strays: string[] } & Touches)
  | ({ type: 'mend'; imageId: string; /** A copy's source repository, when it is another one. */ copyFrom: string | null } & Touches & OnHost)
  | ({ type: 'optimize'; imageId: string; reason: 'flatten' | 'collapse' | 'resume'; format: 'raw' | 'qcow2' } & Touches & OnHost)
  | ({ type: 'merge'; imageId: string; upper: string; lower: string } & Touches & OnHost);

export interface PlannedFix {
  plan: FixPlan;
  type: FixType;
  imageIds: string[];
  description: string;
  bytes: number;
}
