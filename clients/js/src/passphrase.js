// How strong a store passphrase must be: the reference device's rule
// (mobile_stub/passphrase.py; tests/vectors/passphrases.json pins both), after NIST SP
// 800-63B: length and a check against what attackers try first, no composition rules.

import {WeakPassphrase} from './errors.js';

export const MIN_LENGTH = 12;
const MIN_DISTINCT = 5;
const COMMON = new Set([
  'password', 'passphrase', 'passw0rd', 'qwerty', 'qwertyuiop', 'letmein', 'iloveyou',
  'welcome', 'admin', 'administrator', 'changeme', 'carecouch', 'nhsnurse', 'nurse',
  'monkey', 'dragon', 'football', 'sunshine', 'princess', 'trustno1', 'abc123',
  'correcthorsebatterystaple', 'thequickbrownfox', 'opensesame', 'secret']);
const RUNS = ['0123456789'.repeat(4), '9876543210'.repeat(4), 'abcdefghijklmnopqrstuvwxyz'.repeat(2),
              'zyxwvutsrqponmlkjihgfedcba'.repeat(2), 'qwertyuiopasdfghjklzxcvbnm'.repeat(2)];

function sequence(text) {
  const lowered = text.toLowerCase();
  const chars = [...lowered];
  const steps = new Set();
  for (let i = 1; i < chars.length; i++) { steps.add(chars[i].codePointAt(0) - chars[i - 1].codePointAt(0)); }
  const step = [...steps];
  return (steps.size === 1 && Math.abs(step[0]) <= 1) || RUNS.some((run) => run.includes(lowered));
}

export function checkPassphrase(passphrase) {
  const chars = [...passphrase];
  if (chars.length < MIN_LENGTH) {
    throw new WeakPassphrase(`the passphrase must be at least ${MIN_LENGTH} characters (three random words are easy to remember); this one has ${chars.length}`);
  }
  if (new Set(chars).size < MIN_DISTINCT || sequence(passphrase)) {
    throw new WeakPassphrase("the passphrase repeats one pattern (like 'aaaa' or '1234'); use words or a sentence");
  }
  const core = passphrase.toLowerCase().replace(/[^\p{L}\p{N}\p{M}]+/gu, '').replace(/[0-9]+$/, '');
  if (COMMON.has(core)) {
    throw new WeakPassphrase('the passphrase is one attackers try first; choose words of your own');
  }
}
