import { randomUUID } from 'node:crypto';

/** NHS numbers from the 999 test range with valid Modulus 11 check digits: never real patients. */
export const DEMO_PATIENTS = ['9990000018', '9990000026', '9990000034', '9990000042', '9990000050'] as const;

export interface DemoDevice {
  readonly deviceId: string;
  readonly patient: string;
  readonly token: string;
}

export interface ApiReading {
  readonly readingId: string;
  readonly code: string;
  readonly value?: number;
  readonly unit: string;
  readonly measuredAt: string;
  readonly components?: ReadonlyArray<{ code: string; value: number; unit: string }>;
}

const round = (v: number, digits = 0) => Number(v.toFixed(digits));

/** One realistic reading from a wearable: heart rate, SpO2, respiration, temperature or blood pressure. */
export function simulatedReading(patientIndex: number, sequence: number, measuredAt: Date): ApiReading {
  const base = { readingId: randomUUID(), measuredAt: measuredAt.toISOString().replace('Z', '+00:00') };
  const wobble = Math.sin(sequence / 7 + patientIndex);
  switch (sequence % 5) {
    case 0:
      return { ...base, code: '8867-4', value: round(68 + patientIndex * 4 + wobble * 9), unit: '/min' };
    case 1:
      return { ...base, code: '2708-6', value: round(96 + wobble * 2), unit: '%' };
    case 2:
      return { ...base, code: '9279-1', value: round(14 + wobble * 3), unit: '/min' };
    case 3:
      return { ...base, code: '8310-5', value: round(36.8 + wobble * 0.4, 1), unit: 'Cel' };
    default:
      return {
        ...base,
        code: '85354-9',
        unit: 'mm[Hg]',
        components: [
          { code: '8480-6', value: round(122 + patientIndex * 3 + wobble * 8), unit: 'mm[Hg]' },
          { code: '8462-4', value: round(79 + wobble * 5), unit: 'mm[Hg]' },
        ],
      };
  }
}
