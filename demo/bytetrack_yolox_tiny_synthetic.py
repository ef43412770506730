# ByteTrack on a tiny YOLOX, for the synthetic world of `mmtrack-serve synth`
# (320x240 frames of squares, circles and triangles). Self-contained: no
# _base_, nothing downloaded; trains from scratch in about 15 minutes on
# 2 CPU cores. Train the detector, track with ByteTrack's default thresholds:
#
#   mmtrack-serve synth --out data/synthetic/train --videos 200 --frames 30 --seed 0
#   mmtrack-serve synth --out data/synthetic/val --videos 10 --frames 30 --seed 1
#   mmtrack-serve train mmtrack_serve/training/configs/bytetrack_yolox_tiny_synthetic.py \
#       --work-dir work_dirs/synthetic --seed 0
#
# (or all of it, with publishing and scoring: python -m mmtrack_serve.training.demo_model)

classes = ('square', 'circle', 'triangle')
# (height, width): a 320x240 frame is padded, not resized, to this
input_size = (256, 320)
img_scale = (input_size[1], input_size[0])  # mmdet's Resize wants (width, height)
pad_val = 114.0

model = dict(
    type='ByteTrack',
    detector=dict(
        type='YOLOX',
        input_size=input_size,
        # one size (8 * 32 = 256 high, 10 * 32 = 320 wide): no multi-scale training
        random_size_range=(8, 8),
        random_size_interval=10,
        backbone=dict(type='CSPDarknet', deepen_factor=0.33, widen_factor=0.25),
        neck=dict(type='YOLOXPAFPN', in_channels=[64, 128, 256], out_channels=64,
                  num_csp_blocks=1),
        bbox_head=dict(type='YOLOXHead', num_classes=len(classes), in_channels=64,
                       feat_channels=64),
        train_cfg=dict(assigner=dict(type='SimOTAAssigner', center_radius=2.5)),
        test_cfg=dict(score_thr=0.01, nms=dict(type='nms', iou_threshold=0.7))),
    motion=dict(type='KalmanFilter'),
    # ByteTrack's defaults (bytetrack_yolox_x_crowdhuman_mot17-private-half)
    tracker=dict(
        type='ByteTracker',
        obj_score_thrs=dict(high=0.6, low=0.1),
        init_track_thr=0.7,
        weight_iou_with_det_scores=True,
        match_iou_thrs=dict(high=0.1, low=0.5, tentative=0.3),
        num_frames_retain=30))

# No Mosaic/MixUp/affine: the shapes already come in every size and overlap;
# colour jitter and flips are enough for this world.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', flip_ratio=0.5),
    dict(type='Resize', img_scale=img_scale, keep_ratio=True),
    dict(type='Pad', size=input_size, pad_val=dict(img=(pad_val, pad_val, pad_val))),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type='DefaultFormatBundle'),
    dict(type='Collect', keys=['img', 'gt_bboxes', 'gt_labels'])
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='MultiScaleFlipAug',
        img_scale=img_scale,
        flip=False,
        transforms=[
            dict(type='Resize', keep_ratio=True),
            dict(type='RandomFlip'),
            # YOLOX takes raw BGR pixel values, as in training
            dict(type='Normalize', mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0], to_rgb=False),
            dict(type='Pad', size_divisor=32, pad_val=dict(img=(pad_val, pad_val, pad_val))),
            dict(type='ImageToTensor', keys=['img']),
            dict(type='VideoCollect', keys=['img'])
        ])
]

# `mmtrack-serve synth --out DIR` layout: DIR/annotations/cocovid.json, DIR/images
data_root = 'data/synthetic/'
data = dict(
    samples_per_gpu=16,
    # decoding 16 small jpgs is quick next to a CPU training step
    workers_per_gpu=1,
    persistent_workers=True,
    # the detector trains on frames, as single images
    train=dict(
        type='CocoDataset',
        classes=classes,
        ann_file=data_root + 'train/annotations/cocovid.json',
        img_prefix=data_root + 'train/images/',
        pipeline=train_pipeline,
        filter_empty_gt=False),
    val=dict(
        type='MOTChallengeDataset',
        classes=classes,
        ann_file=data_root + 'val/annotations/cocovid.json',
        img_prefix=data_root + 'val/images/',
        ref_img_sampler=None,
        pipeline=test_pipeline),
    test=dict(
        type='MOTChallengeDataset',
        classes=classes,
        ann_file=data_root + 'val/annotations/cocovid.json',
        img_prefix=data_root + 'val/images/',
        ref_img_sampler=None,
        pipeline=test_pipeline))

# 200 videos x 30 frames / 16 = 375 iterations an epoch: 3 epochs, 1,125 iterations
total_epochs = 3
runner = dict(type='EpochBasedRunner', max_epochs=total_epochs)
optimizer = dict(
    type='SGD',
    lr=0.01,
    momentum=0.9,
    weight_decay=5e-4,
    nesterov=True,
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
optimizer_config = dict(grad_clip=None)
lr_config = dict(
    policy='CosineAnnealing',
    by_epoch=False,
    warmup='linear',
    warmup_iters=50,
    warmup_ratio=0.1,
    min_lr_ratio=0.05)
custom_hooks = [
    # The EMA weights are swapped in at each epoch's end, before the
    # checkpoint is written: checkpoints hold them as the model's weights.
    dict(type='ExpMomentumEMAHook', momentum=0.0001, priority=49)
]

checkpoint_config = dict(interval=1, max_keep_ckpts=1)
log_config = dict(interval=25, hooks=[dict(type='TextLoggerHook')])
# mAP on the val videos after each epoch (tracking metrics: `mmtrack-serve test --eval track`)
evaluation = dict(metric=['bbox'], interval=1)
dist_params = dict(backend='nccl')
log_level = 'INFO'
load_from = None
resume_from = None
workflow = [('train', 1)]
opencv_num_threads = 0
mp_start_method = 'fork'
