"""Tiny random-weight models of each task type, from the configs shipped in the
mmtrack wheel, shrunk (small backbones, small inputs, no pretrained init) so a
frame takes milliseconds on a CPU. Thresholds are lowered so random weights
still produce objects to compare."""
import torch

TINY_MOT = ('bytetrack_yolox_x_crowdhuman_mot17-private-half', {
    'model.detector.input_size': (96, 128),
    'model.detector.init_cfg': None,
    'model.detector.backbone.deepen_factor': 0.33,
    'model.detector.backbone.widen_factor': 0.125,
    'model.detector.neck.in_channels': [32, 64, 128],
    'model.detector.neck.out_channels': 32,
    'model.detector.neck.num_csp_blocks': 1,
    'model.detector.bbox_head.in_channels': 32,
    'model.detector.bbox_head.feat_channels': 32,
    'model.detector.test_cfg.score_thr': 0.3,
    'model.tracker.obj_score_thrs': dict(high=0.5, low=0.3),
    'model.tracker.init_track_thr': 0.5,
    'data.test.pipeline.1.img_scale': (96, 128),
})

TINY_SOT = ('siamese_rpn_r50_20e_lasot', {
    'model.backbone': dict(type='ResNet', depth=18, base_channels=16, out_indices=(1, 2, 3),
                           strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4), norm_eval=True, init_cfg=None,
                           _delete_=True),
    'model.neck.in_channels': [32, 64, 128],
    'model.neck.out_channels': 32,
    'model.head.in_channels': [32, 32, 32],
})

TINY_VID = ('selsa_faster_rcnn_r50_dc5_1x_imagenetvid', {
    'model.detector.backbone.depth': 18,
    'model.detector.backbone.init_cfg': None,
    'model.detector.neck.in_channels': [512],
    'model.detector.neck.out_channels': 64,
    'model.detector.rpn_head.in_channels': 64,
    'model.detector.rpn_head.feat_channels': 64,
    'model.detector.roi_head.bbox_roi_extractor.out_channels': 64,
    'model.detector.roi_head.bbox_head.in_channels': 64,
    'model.detector.roi_head.bbox_head.fc_out_channels': 128,
    'model.detector.roi_head.bbox_head.aggregator.in_channels': 128,
    'model.detector.roi_head.bbox_head.aggregator.num_attention_blocks': 4,
    'model.detector.test_cfg.rpn.nms_pre': 200,
    'model.detector.test_cfg.rpn.max_per_img': 30,
    'model.detector.test_cfg.rcnn.score_thr': 0.0,
    'model.detector.test_cfg.rcnn.max_per_img': 10,
    'data.test.pipeline.1.img_scale': (128, 96),
})

# A two-stage detector's RPN and RoI heads at 32 channels, few proposals, every score kept.
TINY_RCNN_HEADS = {
    'model.detector.rpn_head.in_channels': 32,
    'model.detector.rpn_head.feat_channels': 32,
    'model.detector.roi_head.bbox_roi_extractor.out_channels': 32,
    'model.detector.roi_head.bbox_head.in_channels': 32,
    'model.detector.roi_head.bbox_head.fc_out_channels': 64,
    'model.detector.test_cfg.rpn.nms_pre': 200,
    'model.detector.test_cfg.rpn.max_per_img': 30,
    'model.detector.test_cfg.rcnn.score_thr': 0.0,
    'model.detector.test_cfg.rcnn.max_per_img': 10,
}

TINY_VIS = ('masktrack_rcnn_r50_fpn_12e_youtubevis2019', {
    'model.detector.init_cfg': None,
    'model.detector.backbone.depth': 18,
    'model.detector.backbone.init_cfg': None,
    'model.detector.neck.in_channels': [64, 128, 256, 512],
    'model.detector.neck.out_channels': 32,
    **TINY_RCNN_HEADS,
    'model.detector.roi_head.mask_roi_extractor.out_channels': 32,
    'model.detector.roi_head.mask_head.in_channels': 32,
    'model.detector.roi_head.mask_head.conv_out_channels': 32,
    'model.track_head.roi_extractor.out_channels': 32,
    'model.track_head.embed_head.in_channels': 32,
    'model.track_head.embed_head.fc_out_channels': 64,
    'data.test.pipeline.1.img_scale': (128, 96),
})

# Random head features are ~1e-4: a large gain makes the scores depend on the image.
WEIGHT_STD = 3000.0
TINY = {'mot': TINY_MOT, 'sot': TINY_SOT, 'vid': TINY_VID, 'vis': TINY_VIS}


def tiny_config(task):
    from mmtrack_serve.mmtrack_compat import load_config
    name, options = TINY[task]
    return load_config(name, options)


def make_tiny_checkpoint(task, path, seed=0):
    """Random tiny weights saved as an mmcv checkpoint; returns the config.

    YOLOX initialises its score biases for a 1% prior, so random weights would
    detect nothing: MOT's score convs get large weights so scores vary with the
    image and objects appear to track."""
    from mmcv.runner import save_checkpoint
    from mmtrack_serve.models import load_model
    torch.manual_seed(seed)
    cfg = tiny_config(task)
    model = load_model(cfg)
    if task == 'mot':
        head = model.module.detector.bbox_head
        for conv in list(head.multi_level_conv_cls) + list(head.multi_level_conv_obj):
            torch.nn.init.normal_(conv.weight, std=WEIGHT_STD)
            torch.nn.init.constant_(conv.bias, 0.0)
    if task == 'sot':
        # random box deltas let the target grow without bound (and each crop
        # with it): zero them so boxes stay anchor-sized
        for param in model.module.head.reg_heads.parameters():
            torch.nn.init.zeros_(param)
    save_checkpoint(model.module, str(path), meta={'CLASSES': tuple(model.classes)})
    return cfg


# MMTracking's model-zoo DeepSORT: the model is assembled from a detector and a
# ReID checkpoint named by init_cfg URLs (kept here, as in the zoo config).
TINY_DEEPSORT = ('deepsort_faster-rcnn_fpn_4e_mot17-private-half', {
    'model.detector.backbone.depth': 18,
    'model.detector.backbone.base_channels': 16,
    'model.detector.backbone.init_cfg': None,
    'model.detector.neck.in_channels': [16, 32, 64, 128],
    'model.detector.neck.out_channels': 32,
    **TINY_RCNN_HEADS,
    'model.reid.backbone.depth': 18,
    'model.reid.backbone.base_channels': 16,
    'model.reid.neck.kernel_size': (2, 1),     # the 64x32 crop's last feature map
    'model.reid.head.in_channels': 128,
    'model.reid.head.fc_channels': 64,
    'model.reid.head.out_channels': 32,
    'model.reid.head.num_classes': 10,
    'model.tracker.obj_score_thr': 0.0,
    'model.tracker.reid.img_scale': (64, 32),
    'data.test.pipeline.1.img_scale': (128, 96),
})


def make_tiny_deepsort_parts(folder, seed=0):
    """Saves the tiny DeepSORT's detector and ReID as separate checkpoints, as
    the model zoo ships them; returns (config with the zoo's URLs, det, reid)."""
    from mmcv.runner import save_checkpoint
    from mmtrack_serve.mmtrack_compat import load_config
    from mmtrack_serve.models import load_model
    torch.manual_seed(seed)
    name, options = TINY_DEEPSORT
    cfg = load_config(name, options)
    model = load_model(load_config(name, options))
    det, reid = folder / 'detector.pth', folder / 'reid.pth'
    save_checkpoint(model.module.detector, str(det))
    save_checkpoint(model.module.reid, str(reid))
    return cfg, det, reid


# MMTracking's public-detection SORT: the detector's RoI head re-scores the boxes
# supplied with the video (MOTChallenge det.txt) instead of its RPN's proposals.
# The public pipeline is LoadImageFromFile, LoadDetections, MultiScaleFlipAug.
TINY_PUBLIC = ('sort_faster-rcnn_fpn_4e_mot17-public-half', {
    'model.detector.init_cfg': None,
    'model.detector.backbone.depth': 18,
    'model.detector.backbone.base_channels': 16,
    'model.detector.backbone.init_cfg': None,
    'model.detector.neck.in_channels': [16, 32, 64, 128],
    'model.detector.neck.out_channels': 32,
    **TINY_RCNN_HEADS,
    'model.detector.test_cfg.rcnn.max_per_img': 100,    # every supplied box may survive
    'model.tracker.obj_score_thr': 0.0,
    'data.test.pipeline.2.img_scale': (192, 108),
})


def make_tiny_public(folder, seed=0):
    """The tiny public-detection SORT saved as (config.py, checkpoint.pth); the
    config keeps the wheel config's name, for messages that name it."""
    from mmcv.runner import save_checkpoint
    from mmtrack_serve.mmtrack_compat import load_config, record_source
    from mmtrack_serve.models import load_model
    torch.manual_seed(seed)
    name, options = TINY_PUBLIC
    cfg = load_config(name, options)
    record_source(cfg)
    model = load_model(cfg)
    config, ckpt = folder / 'tiny_public.py', folder / 'tiny_public.pth'
    save_checkpoint(model.module, str(ckpt), meta={'CLASSES': tuple(model.classes)})
    cfg.dump(str(config))
    return config, ckpt
