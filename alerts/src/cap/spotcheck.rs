//! Spot-check records (抽检结果) as typed data, and the RASFF-style classification, with their
//! encoding as CAP `<parameter>`s.
//!
//! # Parameter encoding
//! A record travels in its `info` as one `<parameter>` per field, `valueName` `spotcheck:<field>`,
//! written in this order (single-valued unless noted; `?` = optional):
//!
//! | valueName | field | 中文 |
//! |---|---|---|
//! | `spotcheck:producerName`? | [`SpotCheck::producer_name`] | 标称生产企业名称 |
//! | `spotcheck:producerAddress`? | [`SpotCheck::producer_address`] | 标称生产企业地址 |
//! | `spotcheck:sampledName` | [`SpotCheck::sampled_name`] | 被抽样单位名称 |
//! | `spotcheck:sampledAddress`? | [`SpotCheck::sampled_address`] | 被抽样单位地址 |
//! | `spotcheck:productName` | [`SpotCheck::product_name`] | 食品名称 |
//! | `spotcheck:specification`? | [`SpotCheck::specification`] | 规格型号 |
//! | `spotcheck:brand`? | [`SpotCheck::brand`] | 商标 |
//! | `spotcheck:batch`? | [`SpotCheck::batch`] | 生产日期/批号 |
//! | `spotcheck:category`? | [`SpotCheck::category`] | 分类 |
//! | `spotcheck:noticeNumber`? | [`SpotCheck::notice_number`] | 公告号 |
//! | `spotcheck:noticeDate`? | [`SpotCheck::notice_date`], `YYYY-MM-DD` | 公告日期 |
//! | `spotcheck:taskSource`? | [`SpotCheck::task_source`] | 任务来源 |
//! | `spotcheck:institute`? | [`SpotCheck::institute`] | 检验机构 |
//! | `spotcheck:result` | [`SpotCheck::result`], `pass` or `fail` | 检验结论 |
//! | `spotcheck:failedItem`, repeated | one [`FailedItem`] each, in order | 不合格项目 |
//!
//! A failed item's value is four fields separated by `|`: `name|measured|limit|unit`, e.g.
//! `二氧化硫残留量|0.79|≤0.2|g/kg`. Inside a field `\` is written `\\` and `|` is written `\|`;
//! no other escape exists, so decoding is unambiguous and a malformed value (wrong field count,
//! unknown escape, trailing `\`) is an error. An empty unit means none (`不得检出` limits).
//!
//! Any other `spotcheck:*` name is an error (the prefix is reserved), as is a repeated
//! single-valued field. RASFF fields are `rasff:classification` and `rasff:risk`, written after
//! the record. In JSON the record is a `spotCheck` object with the field names above and
//! `failedItems: [{name, measured, limit, unit?}]`; RASFF fields are `rasffClassification` and
//! `rasffRisk`.

use serde::Serialize;

use super::datetime::Date;
use super::enums::cap_enum;

cap_enum! {
    /// The conclusion of a spot check (检验结论).
    SpotCheckResult {
        /// 合格: every tested item within its limit.
        Pass = "pass",
        /// 不合格: at least one failed item.
        Fail = "fail",
    }
}

cap_enum! {
    /// RASFF notification classification, mirrored as parameter `rasff:classification`.
    RasffClassification {
        /// Alert notification: serious risk, product on the market, rapid action needed.
        Alert = "alert",
        /// Information notification for attention: no rapid action needed by others.
        InformationAttention = "information-attention",
        /// Information notification for follow-up: others may need to act.
        InformationFollowUp = "information-follow-up",
        /// Border rejection: refused at the border.
        BorderRejection = "border-rejection",
        /// News: information of interest that is not a notification.
        News = "news",
    }
}

cap_enum! {
    /// RASFF risk decision, mirrored as parameter `rasff:risk`.
    RasffRisk {
        /// Serious risk.
        Serious = "serious",
        /// Not serious.
        NotSerious = "not-serious",
        /// Undecided.
        Undecided = "undecided",
    }
}

/// One spot-check record: one batch of one product, as regulators publish them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpotCheck {
    /// 标称生产企业名称: the producer named on the label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub producer_name: Option<String>,
    /// 标称生产企业地址: the labelled producer's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub producer_address: Option<String>,
    /// 被抽样单位名称: the business the sample was taken from.
    pub sampled_name: String,
    /// 被抽样单位地址: its address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampled_address: Option<String>,
    /// 食品名称: the product.
    pub product_name: String,
    /// 规格型号: specification, e.g. `500g/袋`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub specification: Option<String>,
    /// 商标: brand.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// 生产日期/批号: production date or batch number, as printed (free text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// 分类: food category, e.g. `蔬菜制品`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// 公告号: number of the notice that published the result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice_number: Option<String>,
    /// 公告日期: date of that notice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice_date: Option<Date>,
    /// 任务来源: the programme that ordered the check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_source: Option<String>,
    /// 检验机构: the testing institute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub institute: Option<String>,
    /// Pass or fail.
    pub result: SpotCheckResult,
    /// 不合格项目: every failed item (empty when the result is pass).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_items: Vec<FailedItem>,
}

/// One failed test item: 不合格项目 ║ 检验结果 ║ 标准值.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct FailedItem {
    /// 不合格项目: what was measured, e.g. `二氧化硫残留量`.
    pub name: String,
    /// 检验结果: the measured value as reported, e.g. `0.79` or `检出`.
    pub measured: String,
    /// 标准值: the limit as the standard states it, e.g. `≤0.2` or `不得检出`.
    pub limit: String,
    /// Unit of both values, e.g. `g/kg`; none for qualitative limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// Escapes one field of a failed-item value: `\` → `\\`, `|` → `\|`.
fn escape_field(out: &mut String, field: &str) {
    for c in field.chars() {
        if matches!(c, '\\' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
}

impl FailedItem {
    /// The `spotcheck:failedItem` parameter value: `name|measured|limit|unit`, escaped.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let unit = self.unit.as_deref().unwrap_or("");
        for (i, field) in [&self.name, &self.measured, &self.limit, unit]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                out.push('|');
            }
            escape_field(&mut out, field);
        }
        out
    }

    /// Decodes a `spotcheck:failedItem` value; the error says what is wrong with it.
    pub fn decode(value: &str) -> Result<FailedItem, String> {
        let (mut fields, mut current) = (Vec::new(), String::new());
        let mut chars = value.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(e @ ('\\' | '|')) => current.push(e),
                    Some(e) => {
                        return Err(format!("unknown escape `\\{e}` (only `\\\\` and `\\|`)"));
                    }
                    None => return Err("ends with a lone `\\`".into()),
                },
                '|' => fields.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
        }
        fields.push(current);
        let [name, measured, limit, unit] = <[String; 4]>::try_from(fields).map_err(|f| {
            format!(
                "has {} `|`-separated fields, expected 4: name|measured|limit|unit",
                f.len()
            )
        })?;
        for (what, field) in [
            ("name", &name),
            ("measured value", &measured),
            ("limit", &limit),
        ] {
            if field.is_empty() {
                return Err(format!("has an empty {what}"));
            }
        }
        Ok(FailedItem {
            name,
            measured,
            limit,
            unit: (!unit.is_empty()).then_some(unit),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, measured: &str, limit: &str, unit: Option<&str>) -> FailedItem {
        FailedItem {
            name: name.into(),
            measured: measured.into(),
            limit: limit.into(),
            unit: unit.map(Into::into),
        }
    }

    #[test]
    fn failed_items_encode_and_decode() {
        let so2 = item("二氧化硫残留量", "0.79", "≤0.2", Some("g/kg"));
        assert_eq!(so2.encode(), "二氧化硫残留量|0.79|≤0.2|g/kg");
        assert_eq!(FailedItem::decode(&so2.encode()), Ok(so2));
        let odd = item(r"a|b\c", "检出", "不得检出", None);
        assert_eq!(odd.encode(), r"a\|b\\c|检出|不得检出|");
        assert_eq!(FailedItem::decode(&odd.encode()), Ok(odd));
    }

    #[test]
    fn malformed_failed_items_are_errors() {
        for bad in [
            "a|b|c",
            "a|b|c|d|e",
            r"a\x|b|c|d",
            "a|b|c|d\\",
            "|1|2|g",
            "a||2|g",
            "",
        ] {
            assert!(FailedItem::decode(bad).is_err(), "{bad}");
        }
    }
}
