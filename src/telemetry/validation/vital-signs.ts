/**
 * The vital signs we accept: LOINC codes from the FHIR R4 vital-signs profile with the one UCUM
 * unit each requires. Plausibility ranges are deliberately wide (they catch sensor faults and
 * unit mix-ups, e.g. °F sent as Cel, not clinical abnormality: an abnormal reading is exactly
 * what must get through).
 */
export interface Range {
  readonly min: number;
  readonly max: number;
  readonly integer?: boolean;
}

export interface VitalSign {
  readonly code: string;
  readonly display: string;
  readonly unit: string;
  /** Present for single-valued signs. */
  readonly range?: Range;
  /** Present for panels (blood pressure): component code → range, all required. */
  readonly components?: Readonly<Record<string, Range>>;
}

export const SYSTOLIC = '8480-6';
export const DIASTOLIC = '8462-4';
export const BLOOD_PRESSURE = '85354-9';

const SIGNS: readonly VitalSign[] = [
  { code: '8867-4', display: 'Heart rate', unit: '/min', range: { min: 20, max: 300 } },
  { code: '2708-6', display: 'Oxygen saturation in arterial blood', unit: '%', range: { min: 50, max: 100 } },
  { code: '59408-5', display: 'Oxygen saturation by pulse oximetry', unit: '%', range: { min: 50, max: 100 } },
  { code: '9279-1', display: 'Respiratory rate', unit: '/min', range: { min: 2, max: 80 } },
  { code: '8310-5', display: 'Body temperature', unit: 'Cel', range: { min: 25, max: 45 } },
  {
    code: BLOOD_PRESSURE,
    display: 'Blood pressure panel',
    unit: 'mm[Hg]',
    components: { [SYSTOLIC]: { min: 40, max: 300 }, [DIASTOLIC]: { min: 20, max: 200 } },
  },
  { code: '29463-7', display: 'Body weight', unit: 'kg', range: { min: 0.2, max: 500 } },
  { code: '8302-2', display: 'Body height', unit: 'cm', range: { min: 20, max: 280 } },
  { code: '39156-5', display: 'Body mass index', unit: 'kg/m2', range: { min: 5, max: 150 } },
  { code: '9843-4', display: 'Head circumference', unit: 'cm', range: { min: 10, max: 80 } },
  { code: '41950-7', display: 'Number of steps in 24 hour', unit: '/d', range: { min: 0, max: 200_000, integer: true } },
];

export const VITAL_SIGNS: ReadonlyMap<string, VitalSign> = new Map(SIGNS.map((s) => [s.code, s]));

export function inRange(value: number, range: Range): boolean {
  return value >= range.min && value <= range.max && (!range.integer || Number.isInteger(value));
}
