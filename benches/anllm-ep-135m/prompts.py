#!/usr/bin/env python3
"""Chat prompts for AnLLM-EP-135M distillation data, one per line ("\\n" escaped).

Deterministic (seed 34). Two kinds, none from a scored evaluation split:
  * instructions from templates x topics (stories, explanations, lists, advice, ...);
  * instructions about passages of the corpus's *training* split (corpus/train.txt):
    summarise, explain, ask questions, continue.
The chat probes of docs/anllm-ep-135m.md (a fox story, why the sky is blue, a list of
fruits) are kept out: their topics are not in TOPICS.

Usage: prompts.py CORPUS_TRAIN_TXT COUNT > prompts.txt
"""
import random
import sys

TEMPLATES = [
    "Tell me a short story about {t}. Use short sentences.",
    "Explain {t} to a child in a few sentences.",
    "Describe {t} in a few sentences.",
    "List five facts about {t}.",
    "Write a short poem about {t}.",
    "Why is {t} important? Answer in three sentences.",
    "Give me three tips about {t}.",
    "What are the pros and cons of {t}?",
    "Write a short paragraph about the history of {t}.",
    "What would you tell a friend who wants to learn about {t}?",
    "Write a short dialogue between two people about {t}.",
    "Summarize what you know about {t} in one paragraph.",
]

TOPICS = [
    "the ocean", "volcanoes", "a lost cat", "the moon", "trains", "bread baking", "rain",
    "a small village", "honey bees", "winter", "the internet", "a lighthouse", "chess",
    "recycling", "a robot", "the desert", "coffee", "friendship", "a library", "mountains",
    "electricity", "a dragon", "gardening", "the brain", "music", "a pirate ship", "bicycles",
    "clouds", "dinosaurs", "a birthday party", "the river", "owls", "soap", "a snowstorm",
    "the Roman Empire", "photosynthesis", "a detective", "sleep", "airplanes", "a haunted house",
    "whales", "exercise", "a market", "the printing press", "penguins", "a forest", "money",
    "a space station", "tea", "the heart", "a young painter", "bridges", "elephants",
    "earthquakes", "a kind neighbour", "saving energy", "the seasons", "a treasure map",
    "computers", "rainbows", "a farm", "the post office", "ants", "learning a language",
]

PASSAGE_TEMPLATES = [
    "Summarize this passage in two sentences:\n\n{p}",
    "What is the main idea of this text?\n\n{p}",
    "Explain this passage in simple words:\n\n{p}",
    "Write two questions about this text and answer them.\n\n{p}",
    "Continue this text with a few sentences:\n\n{p}",
]


def passages(path, rng, count):
    paras = [p.strip() for p in open(path, encoding="utf-8").read().split("\n\n")]
    paras = [p for p in paras if 200 <= len(p) <= 900]
    rng.shuffle(paras)
    return paras[:count]


def main():
    corpus, count = sys.argv[1], int(sys.argv[2])
    rng = random.Random(34)
    grid = [t.format(t=topic) for t in TEMPLATES for topic in TOPICS]
    rng.shuffle(grid)
    n_passage = count // 3
    out = grid[: count - n_passage]
    for p in passages(corpus, rng, n_passage):
        out.append(rng.choice(PASSAGE_TEMPLATES).format(p=" ".join(p.split())))
    rng.shuffle(out)
    for line in out:
        print(line.replace("\n", "\\n"))


if __name__ == "__main__":
    main()
