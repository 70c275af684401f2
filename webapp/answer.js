// The page's honest answers. The lesson-3 app's, from ImageNet's 1,000 probabilities: the rule of
// Python's htc_dl.breeds.honest_answer, read from the bundle's answers.json.

export function percent(p) { return (p * 100).toFixed(0); }   // Python's f"{p:.0%}" without the % sign

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
}

export function honestAnswer(probs, labels, rule) {
  const cats = new Set(rule.imagenet_cats), dogs = new Set(rule.imagenet_dogs);
  const pets = [...rule.imagenet_cats, ...rule.imagenet_dogs];
  let petTotal = 0;
  for (const i of pets) petTotal += probs[i];
  const argmax = (indices) => indices.reduce((best, i) => (probs[i] > probs[best] ? i : best), indices[0]);
  const isPet = petTotal >= rule.threshold;
  const best = isPet ? argmax(pets) : argmax([...probs.keys()]);
  const name = labels[best].split(",")[0], p = probs[best];
  const answer = { imagenet_label: name, imagenet_probability: p, pet_probability: petTotal };
  if (!isPet) {
    return { ...answer, kind: "not_pet", label: null, probability: 1 - petTotal, text: fill(rule.texts.not_pet, { name, p: percent(p) }) };
  }
  const kind = cats.has(best) ? "cat" : "dog";
  const breed = rule.pets_from_imagenet[String(best)];
  if (breed) {
    return { ...answer, kind: "breed", label: breed, probability: p,
             text: fill(rule.texts.breed, { kind, breed: breed.replace(/_/g, " "), name, p: percent(p) }) };
  }
  let kindTotal = 0;
  for (const i of (kind === "cat" ? rule.imagenet_cats : rule.imagenet_dogs)) kindTotal += probs[i];
  return { ...answer, kind: "other_pet", label: kind, probability: kindTotal, text: fill(rule.texts.other_pet, { kind, name, p: percent(p) }) };
}

// The honest answer of a classifier with its own labels (answers.json {"rule": "threshold", ...},
// written by htc_dl.deploy for a learner's model): its top label, or "not one of my N classes" when
// the top probability is below the threshold chosen on the model's own validation set.
export function thresholdAnswer(probs, labels, rule) {
  const best = argmax(probs), label = labels[best], p = probs[best];
  const values = { label, p: percent(p), n: rule.n_classes };
  if (p < rule.threshold) {
    const text = fill(rule.texts.unknown, values);
    return { kind: "unknown", label: null, closest: label, probability: p, text };
  }
  return { kind: "label", label, probability: p, text: fill(rule.texts.label, values) };
}

const argmax = (probs) => [...probs.keys()].reduce((b, i) => (probs[i] > probs[b] ? i : b), 0);

// What is wrong with answers.json for these labels, said by the page at load time; null if nothing.
export function ruleProblem(rule, labels) {
  if (rule.rule === "threshold") {
    const t = rule.threshold, texts = rule.texts || {};
    if (typeof t !== "number" || !(t >= 0 && t <= 1)) {
      return `its threshold is ${JSON.stringify(t)}, not a probability between 0 and 1`;
    }
    if (rule.n_classes !== labels.length) {
      return `it is for ${rule.n_classes} classes but labels.json has ${labels.length}`;
    }
    if (typeof texts.label !== "string" || typeof texts.unknown !== "string") {
      return "its texts need both 'label' and 'unknown'";
    }
    return null;
  }
  if (!Array.isArray(rule.imagenet_cats)) {
    return `its rule ${JSON.stringify(rule.rule)} is neither "threshold" nor ImageNet's pets rule`;
  }
  if (labels.length !== 1000) return `its ImageNet rule needs 1,000 labels, not ${labels.length}`;
  return null;
}

// The page's answer for any bundle: the rule in answers.json, or the top label where there is none.
export function answerFor(probs, labels, rule) {
  if (rule && rule.rule === "threshold") return thresholdAnswer(probs, labels, rule);
  if (rule) return honestAnswer(probs, labels, rule);
  const best = argmax(probs);
  const label = labels[best];
  return { kind: "label", label, probability: probs[best], text: `most likely ${label}` };
}

export function topK(probs, labels, k = 3) {
  return [...probs.keys()].sort((a, b) => probs[b] - probs[a]).slice(0, k).map((i) => [labels[i], probs[i], i]);
}
