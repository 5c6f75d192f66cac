/**
 * NHS numbers are ten digits whose last digit is a Modulus 11 check digit over the first nine
 * (weights 10..2). A remainder giving check value 10 means the number was never issued.
 * Spaces and hyphens are accepted on input because numbers are usually written 3-3-4.
 */
export function normaliseNhsNumber(input: string): string | undefined {
  const digits = input.replace(/[\s-]/g, '');
  return isValidNhsNumber(digits) ? digits : undefined;
}

export function isValidNhsNumber(value: string): boolean {
  if (!/^[0-9]{10}$/.test(value)) return false;
  let sum = 0;
  for (let i = 0; i < 9; i += 1) sum += Number(value[i]) * (10 - i);
  const check = (11 - (sum % 11)) % 11;
  return check !== 10 && check === Number(value[9]);
}
