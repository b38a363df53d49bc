/** The mount(8) command lines diskflow builds, and where it mounts: pure functions, no mounting here. */
import { describe, expect, it } from 'vitest';
import { findMount, mountArgs, mountPointFor } from '../../activities/host/mounts';
import { nfsMountSpec } from '../../activities/repository/formats/nfs';
import { posixfs } from '../../activities/repository/formats/posixfs';
import { PosixFsParams, NfsParams } from '../../api/formats';

describe('mount arguments', () => {
  it('nfs-1.0 is mount -t nfs -o nosuid,nodev[,options] server:/export <point>, as an argument array', () => {
    const spec = nfsMountSpec(NfsParams.parse({ server: 'filer.example', export: '/exports/vm', mountOptions: 'vers=4.2,hard,timeo=600' }));
    expect(mountArgs(spec, '/var/lib/diskflow/mnt/p')).toEqual(['-t', 'nfs', '-o', 'nosuid,nodev,vers=4.2,hard,timeo=600', 'filer.example:/exports/vm', '/var/lib/diskflow/mnt/p']);
    expect(mountArgs(nfsMountSpec(NfsParams.parse({ server: '[fd00::1]', export: '/e' })), '/p')).toEqual(['-t', 'nfs', '-o', 'nosuid,nodev', '[fd00::1]:/e', '/p']);
  });

  it('posixfs-1.0 passes spec, type and options through after nosuid,nodev; a spec with blanks stays one argument', () => {
    const params = PosixFsParams.parse({ spec: '/srv/images/my disk.xfs', vfsType: 'xfs', mountOptions: 'loop,noatime' });
    expect(mountArgs({ vfsType: params.vfsType, spec: params.spec, options: params.mountOptions }, '/p')).toEqual([
      '-t', 'xfs', '-o', 'nosuid,nodev,loop,noatime', '/srv/images/my disk.xfs', '/p',
    ]);
    expect(posixfs.format).toBe('posixfs-1.0');
  });

  it('vfsType is an allow-list: no fuse helpers, no bind mounts, nothing mount(8) would run a program for', () => {
    for (const vfsType of ['fuse.sshfs', 'fuse', 'none', 'glusterfs', 'tmpfs', 'proc', 'XFS']) {
      expect(PosixFsParams.safeParse({ spec: '/dev/sdb', vfsType }).success, vfsType).toBe(false);
    }
    expect(PosixFsParams.safeParse({ spec: '/dev/sdb', vfsType: 'xfs' }).success).toBe(true);
  });

  it('options outside the allow-list, and specs that look like options, never reach mount(8)', () => {
    expect(PosixFsParams.safeParse({ spec: '/dev/sdb', vfsType: 'xfs', mountOptions: 'exec' }).success).toBe(false);
    expect(PosixFsParams.safeParse({ spec: '/dev/sdb', vfsType: 'xfs', mountOptions: 'loop,suid' }).success).toBe(false);
    expect(PosixFsParams.safeParse({ spec: '/dev/sdb', vfsType: 'xfs', mountOptions: 'ro -o exec' }).success).toBe(false);
    expect(PosixFsParams.safeParse({ spec: '--bind', vfsType: 'none' }).success).toBe(false);
    expect(NfsParams.safeParse({ server: '-oexec', export: '/e' }).success).toBe(false);
  });

  it('the mount point is stable per spec, distinct between specs, and below DISKFLOW_HOME/mnt', () => {
    const a = mountPointFor('/h', { vfsType: 'nfs', spec: 'filer:/a/b' });
    expect(a).toBe(mountPointFor('/h', { vfsType: 'nfs', spec: 'filer:/a/b', options: 'hard' }));
    expect(a).toMatch(/^\/h\/mnt\/nfs_filer:_a_b_[0-9a-f]{8}$/);
    expect(mountPointFor('/h', { vfsType: 'nfs', spec: 'filer:/a_b' })).not.toBe(a);
    expect(mountPointFor('/h', { vfsType: 'xfs', spec: 'filer:/a/b' })).not.toBe(a);
    expect(mountPointFor('/h', { vfsType: 'xfs', spec: `/${'x'.repeat(4000)}` }).length).toBeLessThan(120);
  });

  it('reads what is mounted at a point from /proc/self/mountinfo', async () => {
    expect(await findMount('/')).toMatchObject({ target: '/' });
    expect(await findMount('/nowhere/at/all')).toBeNull();
  });
});
