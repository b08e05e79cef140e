"""A tiny, offline, deterministic text tokenizer for the tiny backbones.

Real checkpoints bring their own tokenizer (``AutoTokenizer`` / ``AutoProcessor`` from
the checkpoint folder). The tiny models of the miniature world need one that works
without a model hub, so this module trains a small BPE with the ``tokenizers`` library
on an embedded corpus of robot-instruction and vision-language words and wraps it as a
``transformers.PreTrainedTokenizerFast`` carrying every special token the supported
VLM prompt formats use.

Numbers are tokenised one character per token: the pre-tokenizer isolates every
digit, ``-``, ``.``, ``,`` and space, so a string action tokenizer (seed 004) can write
``"-0.1234, 0.5"`` as exactly one token per character. The trained tokenizer is cached
in ``backbones/data/tiny_tokenizer.json``; building from that file is deterministic.
"""

from __future__ import annotations

import string
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

CACHE_FILE = Path(__file__).parent / "backbones" / "data" / "tiny_tokenizer.json"

#: special tokens of every supported prompt format (Qwen-VL, PaliGemma, Kosmos-2, Idefics3, Prismatic)
SPECIAL_TOKENS: tuple[str, ...] = (
    "<pad>",
    "<unk>",
    "<bos>",
    "<eos>",
    "<s>",
    "</s>",
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<image>",
    "</image>",
    "<p>",
    "</p>",
    "<fake_token_around_image>",
    "<global-img>",
    "<end_of_utterance>",
)

_VOCAB_SIZE = 1536

_CORPUS = """
pick up the red cube and place it in the bowl. put the blue cylinder on the plate.
push the green block to the left. move the yellow cube next to the purple bowl.
stack the orange cube on top of the white cube. open the gripper. close the gripper.
grasp the black cylinder. lift the pink cube. place the cube on the plate, then pick up the bowl.
what action should the robot take to pick up the leftmost cube? in: out: the robotic arm
what is in the image? describe the scene. point to the red cube. where is the blue bowl?
the cube is to the left of the bowl. the cylinder is right of the plate, behind the cube.
nearest farthest closest front back left right top bottom middle center above below between
first second third then after before again next rotate turn slide drop release hold carry
box bounding point affordance grasp region object target goal task scene table gripper camera
red green blue yellow orange purple pink white black gray brown cyan magenta wooden metal
cube cubes cylinder cylinders bowl bowls plate plates block blocks object objects
how many are there? yes no there is one two three four five six seven eight nine ten
you are a helpful assistant. user assistant system the a an of to in on at it is and or with
answer question caption image images view wrist base instruction robot arm action actions
""".strip()


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    """Split off spaces, newlines, digits and number punctuation as single-character pieces."""
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"[ \n\t]"), behavior="isolated"),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.Punctuation(behavior="isolated"),
        ]
    )


def _train() -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = _pre_tokenizer()
    tok.decoder = decoders.Fuse()
    alphabet = sorted(set(string.printable))
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=alphabet,
        show_progress=False,
    )
    lines = _CORPUS.splitlines()
    tok.train_from_iterator(lines + [line.capitalize() for line in lines], trainer=trainer)
    return tok


def build_tiny_tokenizer(*, refresh: bool = False) -> PreTrainedTokenizerFast:
    """The tiny tokenizer (from the committed cache file; trained and cached if missing).

    ``refresh=True`` retrains and rewrites the cache (only needed after editing the corpus).
    """
    if refresh or not CACHE_FILE.exists():
        CACHE_FILE.parent.mkdir(parents=True, exist_ok=True)
        _train().save(str(CACHE_FILE))
    return PreTrainedTokenizerFast(
        tokenizer_file=str(CACHE_FILE),
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=[
            t for t in SPECIAL_TOKENS if t not in ("<bos>", "<eos>", "<unk>", "<pad>")
        ],
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
