import type { FastifyInstance } from 'fastify';
import { HttpError } from './http-error.js';

/**
 * The ingest routes take their body as the bytes received (a Buffer): split-batch.ts parses it
 * one reading at a time, so a single bad reading cannot fail the batch. Only JSON media types
 * are accepted (application/json, and application/fhir+json that FHIR clients send); any other
 * Content-Type, or none, is 415 before the body is read. The only charset is UTF-8, so a body
 * declared in another one is 415 too, while one that merely fails to decode is 400 (or, inside
 * one reading, that reading's rejection).
 */
export function registerBatchBodyParsers(app: FastifyInstance, bodyLimit: number): void {
  app.removeAllContentTypeParsers();
  for (const type of ['application/json', 'application/fhir+json']) {
    app.addContentTypeParser(type, { parseAs: 'buffer', bodyLimit }, (request, body, done) => {
      const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(request.headers['content-type'] ?? '')?.[1];
      if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
        done(new HttpError('unsupported-media-type', 'the body must be UTF-8: send charset=utf-8 or no charset'), undefined);
        return;
      }
      done(null, body);
    });
  }
}
