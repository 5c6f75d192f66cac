import type pg from 'pg';
import { PmsError } from '../../errors/catalogue.js';
import { SQLSTATE } from '../../postgres/sqlstate.js';
import { toDbError } from '../db/db-errors.js';
import { normaliseNhsNumber } from '../validation/nhs-number.js';
import { hashToken, newToken } from './token.js';

export interface RegisteredDevice {
  readonly deviceId: string;
  readonly patientId: string;
  /** Shown once; only its hash is stored. */
  readonly token: string;
}

export interface AuthenticatedDevice {
  readonly deviceId: string;
  readonly patientNhsNumber: string;
}

const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Binds a device to one patient and issues its token. */
export async function registerDevice(db: pg.Pool | pg.ClientBase, deviceId: string, patientId: string): Promise<RegisteredDevice> {
  if (!DEVICE_ID.test(deviceId)) {
    throw new PmsError('PMS_ERR_USAGE', '--device-id must be 1-128 characters of letters, digits, . _ : - starting with a letter or digit');
  }
  const nhs = normaliseNhsNumber(patientId);
  if (nhs === undefined) {
    // The value is not echoed: it is (meant to be) a patient identifier.
    throw new PmsError('PMS_ERR_USAGE', '--patient-id is not a valid NHS number (10 digits with a Modulus 11 check digit)');
  }
  const token = newToken('device');
  try {
    await db.query('INSERT INTO telemetry.device (device_id, patient_nhs_number, token_hash) VALUES ($1, $2, $3)', [
      deviceId,
      nhs,
      hashToken(token),
    ]);
  } catch (error) {
    if ((error as { code?: unknown }).code === SQLSTATE.uniqueViolation) {
      throw new PmsError(
        'PMS_ERR_ALREADY_EXISTS',
        `device ${deviceId} is already registered: revoke it and register the replacement under a new device id`,
      );
    }
    throw toDbError(error, 'registering a device');
  }
  return { deviceId, patientId: nhs, token };
}

/** Disables a device: its token stops working on the next request. */
export async function revokeDevice(db: pg.Pool | pg.ClientBase, deviceId: string): Promise<{ deviceId: string; revokedAt: string }> {
  let rows: { revoked_at: Date }[];
  try {
    ({ rows } = await db.query<{ revoked_at: Date }>(
      'UPDATE telemetry.device SET revoked_at = coalesce(revoked_at, now()) WHERE device_id = $1 RETURNING revoked_at',
      [deviceId],
    ));
  } catch (error) {
    throw toDbError(error, 'revoking a device');
  }
  const row = rows[0];
  if (!row) throw new PmsError('PMS_ERR_NOT_FOUND', `device ${deviceId} is not registered: check the id with your device inventory`);
  return { deviceId, revokedAt: row.revoked_at.toISOString() };
}

/** The active device holding this token, or undefined (unknown or revoked). */
export async function authenticateDevice(db: pg.Pool, token: string): Promise<AuthenticatedDevice | undefined> {
  try {
    const { rows } = await db.query<{ device_id: string; patient_nhs_number: string }>(
      'SELECT device_id, patient_nhs_number FROM telemetry.device WHERE token_hash = $1 AND revoked_at IS NULL',
      [hashToken(token)],
    );
    const row = rows[0];
    return row ? { deviceId: row.device_id, patientNhsNumber: row.patient_nhs_number } : undefined;
  } catch (error) {
    throw toDbError(error, 'authenticating a device');
  }
}
