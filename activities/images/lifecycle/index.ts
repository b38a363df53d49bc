/**
 * The image lifecycle: the one module that changes an image's state (this folder; its files
 * are its parts: rules, persist, claims, prepared, chains, removal, copy jobs, volumes, served). Every other module reads
 * records; only the transitions below write the state fields of an image record (`status`,
 * `pending`, `optimizing`, `operation`, `readers`, `prepared`, `removed`, `contentEpoch`,
 * `chainEpoch`, and `generation` with every write) and the `legal` mark of a volume record.
 *
 * Each transition is one atomic read-modify-write of one record (updateImage: under the
 * record's lock, a compare-and-swap on the generation where the write is sent to an SRM), and
 * checks every rule that applies to it inside that same step, on the record as it is then: a
 * rule checked on an earlier read could be overtaken by a racing transition, a rule checked in
 * the step that changes the state cannot. docs/ARCHITECTURE.md, "The image lifecycle", has
 * the table of states and transitions.
 *
 * The rules, for images prepared for a VM ("a VM's write is sacred"):
 * - while an image is prepared on any host, nothing deletes, rewrites, swaps or copies what its
 *   VM writes (snapshot, optimize, merge, copy of it, removal: IMAGE_IN_USE, naming the hosts);
 * - prepare of an image that another running operation is changing or copying is refused
 *   (IMAGE_BUSY, naming the operation);
 * - prepare lets a writer at a virtual disk, so it bumps the disk's contentEpoch in the same
 *   step: a copy that overlapped a writer can never be taken for a copy of one instant.
 */
export * from './rules';
export * from './persist';
export * from './claims';
export * from './prepared';
export * from './chains';
export * from './removal';
export * from './copy-jobs';
export * from './imports';
export * from './volumes';
export * from './served';
export * from './resize';
export * from './backup-export';
