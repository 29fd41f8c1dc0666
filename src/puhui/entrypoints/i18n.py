"""The dashboard's words in Chinese (the default) and English."""

from __future__ import annotations

LANGUAGES = ("zh-CN", "en")
DEFAULT = "zh-CN"

TEXT: dict[str, dict[str, str]] = {
    "zh-CN": {
        "title": "碳普惠清算平台",
        "public": "公开数据",
        "subtitle": "共同机制下各成员平台的核证减排量",
        "total_reduction": "累计减排量",
        "participants": "参与人数",
        "credited_records": "入账记录",
        "platforms": "成员平台",
        "by_province": "各省减排量",
        "by_scene": "各场景减排量",
        "by_platform": "各平台减排量",
        "by_month": "各月减排量",
        "outcomes": "重复与拒绝（按原因）",
        "methodologies": "现行方法学",
        "download": "下载",
        "key": "类别",
        "reduction_kg": "减排量（千克）",
        "records": "记录数",
        "reason": "原因",
        "status": "状态",
        "share": "占比",
        "methodology": "方法学",
        "version": "版本",
        "issuer": "发布方",
        "effective_from": "生效日期",
        "scenes": "场景",
        "language": "语言",
        "tonnes": "吨 CO₂e",
        "people": "人",
        "empty": "暂无数据",
        "credited": "入账",
        "duplicate": "重复",
        "rejected": "拒绝",
        "api_docs": "接口文档",
    },
    "en": {
        "title": "Carbon-inclusion clearing platform",
        "public": "Public data",
        "subtitle": "Verified reductions of the common mechanism's member platforms",
        "total_reduction": "Total reductions",
        "participants": "Participants",
        "credited_records": "Credited records",
        "platforms": "Member platforms",
        "by_province": "Reductions by province",
        "by_scene": "Reductions by scene",
        "by_platform": "Reductions by platform",
        "by_month": "Reductions by month",
        "outcomes": "Duplicates and rejections by reason",
        "methodologies": "Methodologies in force",
        "download": "Download",
        "key": "Category",
        "reduction_kg": "Reduction (kg)",
        "records": "Records",
        "reason": "Reason",
        "status": "Status",
        "share": "Share",
        "methodology": "Methodology",
        "version": "Version",
        "issuer": "Issuer",
        "effective_from": "Effective from",
        "scenes": "Scenes",
        "language": "Language",
        "tonnes": "t CO₂e",
        "people": "people",
        "empty": "No data yet",
        "credited": "credited",
        "duplicate": "duplicate",
        "rejected": "rejected",
        "api_docs": "API docs",
    },
}

SCENES: dict[str, dict[str, str]] = {
    "zh-CN": {
        "walk": "步行", "bike": "骑行", "bus": "公交", "metro": "地铁", "ev": "新能源汽车",
        "recycling": "回收", "paperless": "无纸化", "no_cutlery": "不要餐具",
        "electricity": "节约用电",
    },
    "en": {
        "walk": "Walking", "bike": "Cycling", "bus": "Bus", "metro": "Metro",
        "ev": "Electric car", "recycling": "Recycling", "paperless": "Paperless",
        "no_cutlery": "No cutlery", "electricity": "Electricity saved",
    },
}  # fmt: skip

REASONS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "": "—", "duplicate_ref": "同一凭证重复上报", "duplicate_overlap": "行程时间重叠",
        "conflict": "同一编号内容不一致", "capped": "超过上限", "speed_implausible": "速度不合理",
        "malformed_subject": "用户标识无效", "unknown_region": "未知地区",
        "missing_field": "缺少字段", "ill_typed_field": "字段类型错误",
        "start_in_future": "开始时间在未来", "end_before_start": "结束早于开始",
        "distance_below_straight_line": "距离短于直线距离", "malformed_row": "无法解析",
        "platform_mismatch": "平台不符", "no_methodology": "无适用方法学",
        "record_id_too_long": "记录编号过长", "unknown_scene": "未知场景",
        "unknown_material": "未知材料", "missing_material": "缺少材料",
        "missing_distance": "缺少距离", "missing_quantity": "缺少数量",
        "missing_end": "缺少结束时间",
        "negative_amount": "数量为负", "non_positive_duration": "时长不为正",
        "trip_too_long": "行程超过24小时",
    },
    "en": {
        "": "—", "duplicate_ref": "same evidence reported again",
        "duplicate_overlap": "overlapping trip", "conflict": "same id, other content",
        "capped": "over a cap", "speed_implausible": "implausible speed",
        "malformed_subject": "invalid citizen identifier", "unknown_region": "unknown region",
        "missing_field": "missing field", "ill_typed_field": "ill-typed field",
        "start_in_future": "starts in the future", "end_before_start": "ends before it starts",
        "distance_below_straight_line": "shorter than the straight line",
        "malformed_row": "unreadable row", "platform_mismatch": "another platform's record",
        "no_methodology": "no methodology applies", "record_id_too_long": "record id too long",
        "unknown_scene": "unknown scene", "unknown_material": "unknown material",
        "missing_material": "missing material", "missing_distance": "missing distance",
        "missing_quantity": "missing quantity", "missing_end": "missing end",
        "negative_amount": "negative amount", "non_positive_duration": "no duration",
        "trip_too_long": "trip over 24 hours",
    },
}  # fmt: skip

# English names of the provinces (GB/T 2260 codes), for the English dashboard.
PROVINCES_EN: dict[str, str] = {
    "110000": "Beijing", "120000": "Tianjin", "130000": "Hebei", "140000": "Shanxi",
    "150000": "Inner Mongolia", "210000": "Liaoning", "220000": "Jilin",
    "230000": "Heilongjiang", "310000": "Shanghai", "320000": "Jiangsu", "330000": "Zhejiang",
    "340000": "Anhui", "350000": "Fujian", "360000": "Jiangxi", "370000": "Shandong",
    "410000": "Henan", "420000": "Hubei", "430000": "Hunan", "440000": "Guangdong",
    "450000": "Guangxi", "460000": "Hainan", "500000": "Chongqing", "510000": "Sichuan",
    "520000": "Guizhou", "530000": "Yunnan", "540000": "Tibet", "610000": "Shaanxi",
    "620000": "Gansu", "630000": "Qinghai", "640000": "Ningxia", "650000": "Xinjiang",
    "710000": "Taiwan", "810000": "Hong Kong", "820000": "Macao",
}  # fmt: skip


def language(asked: str | None) -> str:
    """The language to answer in: the one asked for if offered, else Chinese."""
    return asked if asked in LANGUAGES else DEFAULT
