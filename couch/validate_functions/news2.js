// The National Early Warning Score 2 (Royal College of Physicians, 2017): the score of an
// observation's vital signs, derived here once for the rules and for every device. Why: a
// NEWS2 typed by hand can disagree with the vitals it summarises (the test data once recorded
// 1 for vitals that score 0), and a wrong score is a missed escalation. The record rules
// refuse an observation whose `news2` is not the score of its vitals (envelope.js, through
// the registry's `derive`), and devices call score() to show the score and its clinical
// response at once, offline.
//
// Bands exactly as the chart prints them; each parameter is read at the chart's precision
// (whole numbers; temperature to one decimal place).

// limits: [[inclusive upper bound, points], ...] in rising order, the last bound Infinity.
function band(value, limits) {
  if (typeof value !== 'number') { return null; }
  for (var i = 0; i < limits.length; i++) {
    if (value <= limits[i][0]) { return limits[i][1]; }
  }
  return null;  // not a number: the schema rules refuse the record first
}

var RESPIRATION = [[8, 3], [11, 1], [20, 0], [24, 2], [Infinity, 3]];
var SPO2_SCALE_1 = [[91, 3], [93, 2], [95, 1], [Infinity, 0]];
var SYSTOLIC = [[90, 3], [100, 2], [110, 1], [219, 0], [Infinity, 3]];
var PULSE = [[40, 3], [50, 1], [90, 0], [110, 1], [130, 2], [Infinity, 3]];
var TEMPERATURE = [[35.0, 3], [36.0, 1], [38.0, 0], [39.0, 1], [Infinity, 2]];

function spo2Scale2(spo2, onOxygen) {
  if (typeof spo2 !== 'number') { return null; }
  if (spo2 <= 83) { return 3; }
  if (spo2 <= 85) { return 2; }
  if (spo2 <= 87) { return 1; }
  if (spo2 <= 92 || !onOxygen) { return 0; }  // 88-92, or 93 and above on air
  if (spo2 <= 94) { return 1; }
  if (spo2 <= 96) { return 2; }
  return 3;
}

// {score, parameters: {<field>: points}, response} (score and response null when a vital sign
// is missing or not a number): response is the chart's clinical response
// ("low", "low-medium" for a 3 in any single parameter, "medium" for 5-6, "high" for 7+).
exports.score = function (doc) {
  var temperature = Math.round(doc.temperature * 10) / 10;
  var p = {
    respiration_rate: band(doc.respiration_rate, RESPIRATION),
    spo2: doc.spo2_scale === 2 ? spo2Scale2(doc.spo2, doc.on_oxygen === true) :
      band(doc.spo2, SPO2_SCALE_1),
    on_oxygen: typeof doc.on_oxygen !== 'boolean' ? null : doc.on_oxygen ? 2 : 0,
    systolic_bp: band(doc.systolic_bp, SYSTOLIC),
    pulse: band(doc.pulse, PULSE),
    // C (new confusion), V, P, U score 3
    consciousness: typeof doc.consciousness !== 'string' ? null :
      doc.consciousness === 'A' ? 0 : 3,
    temperature: band(temperature, TEMPERATURE)
  };
  var total = 0, single3 = false, name;
  for (name in p) {
    if (Object.prototype.hasOwnProperty.call(p, name)) {
      if (p[name] === null) { return {score: null, parameters: p, response: null}; }
      total += p[name];
      single3 = single3 || p[name] === 3;
    }
  }
  var response = total >= 7 ? 'high' : total >= 5 ? 'medium' : single3 ? 'low-medium' : 'low';
  return {score: total, parameters: p, response: response};
};

// The value the registry's `"derive": "news2"` field must hold (null for vitals that cannot
// be scored: a device then leaves the field for the schema rules to name what is missing).
exports.derive = function (doc) {
  return exports.score(doc).score;
};
