#!/usr/bin/env python3
"""TinySegmenter (the segmenter brainrecon ships, equal to the Python package's tokens) against
MeCab with the IPADIC dictionary (what the ds005531 authors' tools use) on real Japanese text.

    python tools/bench/segmenter_vs_mecab.py TEXT...

A TEXT ending in .po is read as its msgstr entries, one sentence each; a .whl as the Japanese
.po files inside it. The figures in docs/datasets/ds005531.md: Django's Japanese translations
(`pip download --no-deps django==5.2.19`, 13 .po files written by people) and CPython's
Japanese test text:

    python tools/bench/segmenter_vs_mecab.py django-5.2.19-py3-none-any.whl \
        "$(python3 -c 'import test, os; print(os.path.dirname(test.__file__))')/cjkencodings/euc_jp-utf8.txt"

Requirements: tools/bench/requirements-segmenter.txt (mecab-python3 ships libmecab in its
wheel; ipadic is the dictionary). MeCab's words are the reference. Printed, over all sentences:
word-boundary precision, recall and F1 of TinySegmenter; the share of TinySegmenter's tokens
that are one whole MeCab word; the share that are a piece of a longer MeCab word (what a
word2vec vocabulary trained on MeCab's words would not hold); and of MeCab's word types, the
share TinySegmenter ever produces whole.
"""

import argparse
import ast
import re
import sys
import zipfile


def po_messages(lines):
    """The translated strings of a gettext .po file's lines (msgstr and continuation lines)."""
    messages, current, inside = [], [], False
    for line in lines:
        line = line.strip()
        if line.startswith("msgstr"):
            inside = True
            current = [ast.literal_eval(line.split(" ", 1)[1])]
        elif inside and line.startswith('"'):
            current.append(ast.literal_eval(line))
        else:
            if inside and "".join(current):
                messages.append("".join(current))
            inside = False
    if inside and "".join(current):
        messages.append("".join(current))
    return messages


def sentences(paths):
    out = []
    for path in paths:
        if path.endswith(".whl"):
            with zipfile.ZipFile(path) as wheel:
                lines = [message for name in sorted(wheel.namelist())
                         if "/locale/ja/LC_MESSAGES/" in name and name.endswith(".po")
                         for message in po_messages(wheel.read(name).decode("utf-8").splitlines())]
        elif path.endswith(".po"):
            lines = po_messages(open(path, encoding="utf-8").read().splitlines())
        else:
            lines = open(path, encoding="utf-8").read().splitlines()
        for line in lines:
            # Placeholders and markup of messages are no Japanese text.
            line = re.sub(r"%\(\w+\)[sdr]|%[sdr]|\{\w*\}|<[^>]+>|\\n", " ", line).strip()
            if re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", line):
                out.append(line)
    return out


def spans(tokens, text):
    """(start, end) of each token in `text`, tokens found in order (whitespace skipped)."""
    result, at = [], 0
    for token in tokens:
        start = text.find(token, at)
        if start < 0:
            return None
        result.append((start, start + len(token)))
        at = start + len(token)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("texts", nargs="+")
    args = parser.parse_args()
    import MeCab
    import ipadic
    import tinysegmenter

    mecab = MeCab.Tagger(ipadic.MECAB_ARGS + " -Owakati")
    tiny = tinysegmenter.TinySegmenter()
    texts = sentences(args.texts)
    counts = dict(sentences=0, chars=0, tiny=0, mecab=0, boundaries_both=0, boundaries_tiny=0,
                  boundaries_mecab=0, whole=0, piece=0)
    mecab_types, tiny_whole_types = set(), set()
    for text in texts:
        m_tokens = mecab.parse(text).split()
        t_tokens = [t for t in tiny.tokenize(text) if t.strip()]
        m_spans, t_spans = spans(m_tokens, text), spans(t_tokens, text)
        if m_spans is None or t_spans is None:
            continue  # a tokenizer normalised the text; its spans cannot be compared
        counts["sentences"] += 1
        counts["chars"] += len(text)
        counts["tiny"] += len(t_spans)
        counts["mecab"] += len(m_spans)
        m_bounds = {e for _, e in m_spans[:-1]} | {s for s, _ in m_spans[1:]}
        t_bounds = {e for _, e in t_spans[:-1]} | {s for s, _ in t_spans[1:]}
        counts["boundaries_both"] += len(m_bounds & t_bounds)
        counts["boundaries_tiny"] += len(t_bounds)
        counts["boundaries_mecab"] += len(m_bounds)
        m_set = set(m_spans)
        mecab_types.update(m_tokens)
        for span in t_spans:
            word = text[span[0]:span[1]]
            if span in m_set:
                counts["whole"] += 1
                tiny_whole_types.add(word)
            elif any(s <= span[0] and span[1] <= e and (s, e) != span for s, e in m_spans):
                counts["piece"] += 1
    p = counts["boundaries_both"] / max(counts["boundaries_tiny"], 1)
    r = counts["boundaries_both"] / max(counts["boundaries_mecab"], 1)
    f = 2 * p * r / max(p + r, 1e-12)
    print(f"{counts['sentences']} sentences, {counts['chars']} characters; "
          f"MeCab-IPADIC {counts['mecab']} words, TinySegmenter {counts['tiny']} tokens")
    print()
    print("| measure | value |")
    print("|---|---:|")
    print(f"| word boundaries: precision / recall / F1 (MeCab the reference) | {p:.3f} / {r:.3f} / {f:.3f} |")
    print(f"| TinySegmenter tokens that are one whole MeCab word | {counts['whole'] / counts['tiny']:.1%} |")
    print(f"| TinySegmenter tokens that are a piece of a longer MeCab word | {counts['piece'] / counts['tiny']:.1%} |")
    print(f"| MeCab word types TinySegmenter produces whole somewhere | "
          f"{len(mecab_types & tiny_whole_types) / max(len(mecab_types), 1):.1%} |")


if __name__ == "__main__":
    sys.exit(main())
