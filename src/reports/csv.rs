//! CSV as RFC 4180 writes it: comma-separated, CRLF line ends, a field quoted when it holds
//! a comma, a quote or a line break, and quotes inside doubled.

/// Appends one record and its CRLF.
pub fn record<S: AsRef<str>>(out: &mut String, fields: &[S]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let field = field.as_ref();
        if field.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_fields_stay_bare_and_others_are_quoted() {
        let mut out = String::new();
        record(&mut out, &["group", "gross"]);
        record(&mut out, &["acme, inc", "12.50"]);
        record(&mut out, &["say \"hi\"", "line\nbreak"]);
        assert_eq!(
            out,
            "group,gross\r\n\"acme, inc\",12.50\r\n\"say \"\"hi\"\"\",\"line\nbreak\"\r\n"
        );
    }
}
