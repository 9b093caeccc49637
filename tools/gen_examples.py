#!/usr/bin/env python3
"""Writes spec/data/examples_requests.json from Tencent's published examples of essbasic 2021-05-26.

Development time only (like tools/gen_schema.lua): the specs read the committed output, never the examples file.
Each example's "input" is an HTTP request whose JSON body follows the first blank line; the output keeps, for every
action in name order and every example in published order, {"Action", "Index" (1-based), "Params" (that body)}.
json.dumps keeps the body's member order, so the output is byte-for-byte what the examples say.

Usage: python3 tools/gen_examples.py EXAMPLES_JSON [OUT]   (OUT defaults to spec/data/examples_requests.json)
"""
import json
import os
import sys


def params_of(action, index, example):
    text = example["input"]
    head, sep, body = text.partition("\n\n")
    if not sep:
        sys.exit(f"gen_examples: {action} example {index}: no blank line before the body")
    try:
        return json.loads(body)
    except ValueError as e:
        sys.exit(f"gen_examples: {action} example {index}: body is not JSON ({e})")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_path = sys.argv[2] if len(sys.argv) == 3 else os.path.join(root, "spec", "data", "examples_requests.json")
    with open(sys.argv[1], encoding="utf-8") as f:
        actions = json.load(f)["actions"]
    rows = []
    for action in sorted(actions):
        for index, example in enumerate(actions[action], 1):
            rows.append({"Action": action, "Index": index, "Params": params_of(action, index, example)})
    with open(out_path + ".tmp", "w", encoding="utf-8") as f:
        f.write(json.dumps(rows, ensure_ascii=False))
    os.replace(out_path + ".tmp", out_path)
    print(f"gen_examples: {len(rows)} examples of {len(actions)} actions -> {out_path}")


if __name__ == "__main__":
    main()
