/**
 * The modules every workflow on a worker shares: loaded once per workflow thread, before any
 * workflow, instead of once per workflow run (the SDK's preloadModules). Without it each create
 * built zod again, a third of the time its workflow task spent in its module imports.
 *
 * The SDK freezes what is loaded here, so only code without state that changes belongs here:
 * zod (its own builds freeze their exports too). zod writes its global config once, lazily: the
 * default locale when the first schema is built, the default memoizer when the first object,
 * array or record is. Frozen, that config takes no more writes, so both happen here: one object
 * schema is built, and one parse fails (the error path reads the locale). Without this, every
 * workflow fails its first task ("object is not extensible"), which the replay tests see.
 */
import { z } from 'zod';

z.strictObject({ name: z.string().min(1), size: z.number().int() }).safeParse({ name: '', size: 0.5 });
