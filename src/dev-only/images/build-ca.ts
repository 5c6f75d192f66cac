/**
 * Where builds see the machine's CA bundle (mounted read-only by `npm run images`, for npm
 * behind this machine's TLS-intercepting proxy). Not /etc/ssl/certs/ca-certificates.crt: the
 * images' own ca-certificates package writes that file while they build.
 */
export const BUILD_CA = '/run/pms-build-ca.crt';

/** The host's bundle (Debian's path). */
export const HOST_CA = '/etc/ssl/certs/ca-certificates.crt';

/** The podman build option that mounts it. */
export function buildCaVolume(): string[] {
  return ['--volume', `${HOST_CA}:${BUILD_CA}:ro`];
}
