"""Learned segmentation backends from Hugging Face checkpoints: SAM, and an open-vocabulary
detector (OWLv2 or Grounding DINO) whose box prompts SAM.

These are the seed's stage-2 models (it uses Grounding DINO + SAM). Each loads a folder
saved with ``save_pretrained`` (model + processor), e.g. ``facebook/sam-vit-base`` or
``google/owlv2-base-patch16-ensemble`` downloaded beforehand; nothing is fetched here.
Following the seed, detections are kept only when their centre lies inside the region
proposal, the most confident one prompts SAM, and the mask is cut to the proposal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vlaworks.annotate.geometry import PixelBox
from vlaworks.annotate.segment import Segmentation, SegmentRequest

DETECTORS = ("owlv2", "grounding-dino")


def checkpoint_folder(path: Path | str, what: str) -> Path:
    """``path`` as a folder holding ``config.json``; otherwise a one-line error naming the fix."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"No {what} checkpoint at {folder} (config.json is missing); pass a folder saved with "
            "save_pretrained (model and processor), downloaded beforehand."
        )
    return folder


class SamSegmenter:
    """SAM (``SamModel`` + ``SamProcessor``) prompted with the region proposal's box."""

    def __init__(self, path: Path | str, device: str = "cpu") -> None:
        from transformers import SamModel, SamProcessor

        folder = checkpoint_folder(path, "SAM")
        self.name = f"sam:{folder}"
        self.device = device
        self.model = SamModel.from_pretrained(folder).to(device).eval()
        self.processor = SamProcessor.from_pretrained(folder)

    def segment_box(self, image: np.ndarray, box: tuple[float, float, float, float]) -> Segmentation:
        """SAM's single mask for the pixel box ``(x0, y0, x1, y1)``; confidence: its predicted IoU."""
        import torch

        inputs = self.processor(
            images=Image.fromarray(image), input_boxes=[[[float(v) for v in box]]], return_tensors="pt"
        ).to(self.device)
        with torch.no_grad():
            out = self.model(**inputs, multimask_output=False)
        masks = self.processor.image_processor.post_process_masks(
            out.pred_masks.cpu(), inputs["original_sizes"].cpu(), inputs["reshaped_input_sizes"].cpu()
        )
        mask = masks[0][0, 0].numpy().astype(bool)
        return Segmentation(mask, float(out.iou_scores.flatten()[0].clamp(0.0, 1.0)))

    def __call__(self, request: SegmentRequest) -> Segmentation:
        height, width = request.image.shape[:2]
        result = self.segment_box(request.image, tuple(request.proposal))
        return Segmentation(result.mask & request.proposal.region(height, width), result.confidence)


class DetectorSamSegmenter:
    """Text-conditioned detection (OWLv2 or Grounding DINO) of the phrase, then SAM on the
    most confident box whose centre lies in the proposal; confidence = box score × SAM's IoU."""

    def __init__(self, kind: str, detector: Path | str, sam: Path | str, device: str = "cpu") -> None:
        from transformers import AutoProcessor, GroundingDinoForObjectDetection, Owlv2ForObjectDetection

        if kind not in DETECTORS:
            raise ValueError(f"Unknown detector {kind!r}; choose one of {DETECTORS}.")
        folder = checkpoint_folder(detector, kind)
        model_class = Owlv2ForObjectDetection if kind == "owlv2" else GroundingDinoForObjectDetection
        self.kind = kind
        self.device = device
        self.detector = model_class.from_pretrained(folder).to(device).eval()
        self.processor = AutoProcessor.from_pretrained(folder)
        self.sam = SamSegmenter(sam, device=device)
        self.name = f"{kind}:{folder}+{self.sam.name}"

    def detect(self, image: np.ndarray, phrase: str) -> tuple[np.ndarray, np.ndarray]:
        """Boxes ``float [N, 4]`` (pixel x0, y0, x1, y1, clipped to the image) and scores ``[N]``."""
        import torch

        height, width = image.shape[:2]
        picture = Image.fromarray(image)
        if self.kind == "owlv2":
            inputs = self.processor(text=[[phrase]], images=picture, return_tensors="pt").to(self.device)
            with torch.no_grad():
                out = self.detector(**inputs)
            side = max(height, width)  # OWLv2 pads to a square: boxes are in the padded frame
            result = self.processor.post_process_grounded_object_detection(
                out, threshold=0.0, target_sizes=[(side, side)]
            )[0]
        else:
            inputs = self.processor(images=picture, text=phrase + ".", return_tensors="pt").to(self.device)
            with torch.no_grad():
                out = self.detector(**inputs)
            result = self.processor.post_process_grounded_object_detection(
                out, inputs["input_ids"], threshold=0.0, text_threshold=0.0, target_sizes=[(height, width)]
            )[0]
        boxes = result["boxes"].cpu().float().numpy().reshape(-1, 4)
        boxes = np.clip(boxes, 0.0, [width, height, width, height])
        return boxes, result["scores"].cpu().float().numpy().reshape(-1)

    def __call__(self, request: SegmentRequest) -> Segmentation:
        height, width = request.image.shape[:2]
        boxes, scores = self.detect(request.image, request.phrase)
        p: PixelBox = request.proposal
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        proper = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        inside = proper & (cx >= p.x0) & (cx < p.x1) & (cy >= p.y0) & (cy < p.y1)
        if not inside.any():
            return Segmentation(np.zeros((height, width), dtype=bool), 0.0)
        best = int(np.flatnonzero(inside)[scores[inside].argmax()])
        result = self.sam.segment_box(request.image, tuple(boxes[best]))
        mask = result.mask & p.region(height, width)
        return Segmentation(mask, float(np.clip(scores[best] * result.confidence, 0.0, 1.0)))
