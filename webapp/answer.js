// The honest answer of the lesson-3 app, from ImageNet's 1,000 probabilities: the same rule as Python's
// htc_dl.breeds.honest_answer, read from the bundle's answers.json (htc_dl.breeds.honest_answer_table()).

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

export function topK(probs, labels, k = 3) {
  return [...probs.keys()].sort((a, b) => probs[b] - probs[a]).slice(0, k).map((i) => [labels[i], probs[i], i]);
}
