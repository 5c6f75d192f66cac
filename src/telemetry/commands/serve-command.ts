import { loadTelemetryConfig } from '../../config/telemetry-config.js';
import { startServe } from '../api/serve.js';

/**
 * Runs until SIGTERM/SIGINT, then drains: Fastify stops accepting, in-flight requests finish
 * (so an acknowledged batch is always committed), the pool closes, and the process exits 0.
 */
export async function runServe(): Promise<number> {
  const config = loadTelemetryConfig(process.env);
  const server = await startServe(config);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      resolve();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  await server.close();
  return 0;
}
