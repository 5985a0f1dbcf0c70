#!/usr/bin/python3
"""Writes tests/Fixtures/bleu_golden.tsv: corpus BLEU by NLTK (Debian's python3-nltk, corpus_bleu without smoothing)
on the 13a tokens of a few small corpora, one line per sentence: case, hypothesis, reference, NLTK's score (0..1).
Every case has at least one matching n-gram of each order 1-4, where sacreBLEU's "exp" smoothing changes nothing,
so LsKd's sacreBLEU-style BLEU must equal NLTK's. The 13a tokenizer below is sacreBLEU's tokenizer_13a."""
import re, sys
import nltk
from nltk.translate.bleu_score import corpus_bleu

def tokenize_13a(line):
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    line = re.sub(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])", r" \1 ", line)
    line = re.sub(r"([^0-9])([\.,])", r"\1 \2 ", line)
    line = re.sub(r"([\.,])([^0-9])", r" \1 \2", line)
    line = re.sub(r"([0-9])(-)", r"\1 \2 ", line)
    return line.split()

CASES = {
    "one": [("the quick brown fox jumps over the lazy dog", "the quick brown fox jumped over the lazy dog")],
    "short": [("Open the file in the editor now.", "Open the file in the text editor now, please.")],
    "corpus": [
        ("Could not open the file: permission denied.", "Cannot open the file: permission denied."),
        ("The package was not installed because of errors.", "The package has not been installed due to errors."),
        ("Press any key to continue the installation.", "Press a key to continue with the installation."),
        ("No such file or directory", "No such file or directory"),
    ],
    "german": [
        ("Die Datei konnte nicht geöffnet werden.", "Die Datei kann nicht geöffnet werden."),
        ("Drücken Sie eine beliebige Taste, um fortzufahren.", "Drücken Sie eine Taste, um fortzufahren."),
    ],
}

def main():
    out = ["# made by tests/Fixtures/bleu_golden.py with NLTK " + nltk.__version__ + ": case, hypothesis, reference, NLTK corpus_bleu"]
    for name, pairs in CASES.items():
        score = corpus_bleu([[tokenize_13a(r)] for _, r in pairs], [tokenize_13a(h) for h, _ in pairs])
        for h, r in pairs:
            out.append(f"{name}\t{h}\t{r}\t{score!r}")
    sys.stdout.write("\n".join(out) + "\n")

if __name__ == "__main__":
    main()
