//! Human output: lists as aligned tables, single objects as `key: value` lines with nested
//! lists as tables below.

use serde_json::Value;

/// A table column: header and JSON field.
pub(crate) type Column = (&'static str, &'static str);

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Object(m) if m.is_empty() => "-".into(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", cell(v)))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// Prints rows (the first is the header) as aligned columns.
pub(crate) fn table(rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

/// Prints a JSON array as a table with the given columns.
pub(crate) fn print_list(value: &Value, columns: &[Column]) {
    let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
    if items.is_empty() {
        println!("(none)");
        return;
    }
    let mut rows = vec![columns
        .iter()
        .map(|(h, _)| h.to_string())
        .collect::<Vec<_>>()];
    rows.extend(
        items
            .iter()
            .map(|item| columns.iter().map(|(_, f)| cell(&item[*f])).collect()),
    );
    table(&rows);
}

/// Prints a JSON object as `key: value` lines; arrays of objects become tables.
pub(crate) fn print_object(value: &Value) {
    let Some(map) = value.as_object() else {
        println!("{}", cell(value));
        return;
    };
    let width = map.keys().map(|k| k.len()).max().unwrap_or(0) + 1;
    let mut nested = Vec::new();
    for (k, v) in map {
        match v {
            Value::Array(items) if items.iter().all(Value::is_object) => nested.push((k, items)),
            Value::Object(inner) if !inner.is_empty() => {
                println!("{k}:");
                let w = inner.keys().map(|k| k.len()).max().unwrap_or(0) + 1;
                for (ik, iv) in inner {
                    println!("  {:<w$} {}", format!("{ik}:"), cell(iv));
                }
            }
            _ => println!("{:<width$} {}", format!("{k}:"), cell(v)),
        }
    }
    for (k, items) in nested {
        println!("{k}:");
        if items.is_empty() {
            println!("  (none)");
            continue;
        }
        let keys: Vec<&String> = items[0]
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        let mut rows = vec![keys.iter().map(|k| k.to_uppercase()).collect::<Vec<_>>()];
        rows.extend(
            items
                .iter()
                .map(|it| keys.iter().map(|k| cell(&it[k.as_str()])).collect()),
        );
        table(&rows);
    }
}
