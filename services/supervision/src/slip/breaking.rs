//! Chinese line breaking for slips (标点符号用法, GB/T 15834): no line starts with a closing mark or pause, none
//! ends with an opening mark.

/// A slip's text broken into lines no wider than `width`, with the width of each character given: when a break before a character would break a rule, the
/// break moves back and the last characters go down with it (push-out); a line that cannot break anywhere by
/// the rules keeps the mark at its end, past the width (hanging punctuation), which the margin holds.
pub(super) fn wrap_by(s: &str, width: f32, advance: impl Fn(char) -> f32) -> Vec<String> {
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let mut used = 0.0;
    for c in s.chars().filter(|c| !c.is_control()) {
        let w = advance(c);
        let Some(line) = lines.last_mut() else { break };
        if used + w > width && !line.is_empty() {
            // The last place the rules allow a break: the next line's first character may start a line, and
            // this line's last may end one.
            let allowed = |cut: usize| {
                let next = line.get(cut).copied().unwrap_or(c);
                !no_line_start(next) && !no_line_end(line[cut - 1])
            };
            if let Some(cut) = (1..=line.len()).rev().find(|&cut| allowed(cut)) {
                let down = line.split_off(cut);
                used = down.iter().map(|&d| advance(d)).sum();
                lines.push(down);
            }
        }
        if let Some(line) = lines.last_mut() {
            line.push(c);
        }
        used += w;
    }
    lines.into_iter().map(|l| l.into_iter().collect()).collect()
}

/// Closing marks, pauses and stops: a line never starts with one (避头).
fn no_line_start(c: char) -> bool {
    matches!(
        c,
        '，' | '。'
            | '、'
            | '；'
            | '：'
            | '？'
            | '！'
            | '）'
            | '》'
            | '〉'
            | '」'
            | '』'
            | '】'
            | '〕'
            | '〗'
            | '”'
            | '’'
            | '…'
            | '·'
            | '％'
            | ','
            | '.'
            | ';'
            | ':'
            | '?'
            | '!'
            | ')'
            | ']'
            | '}'
            | '%'
    )
}

/// Opening marks: a line never ends with one (避尾).
fn no_line_end(c: char) -> bool {
    matches!(c, '（' | '《' | '〈' | '「' | '『' | '【' | '〔' | '〖' | '“' | '‘' | '(' | '[' | '{')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_line_starts_with_a_closing_mark_nor_ends_with_an_opening_one() {
        // Every character one unit wide, four to a line.
        let wrap4 = |s: &str| wrap_by(s, 4.0, |_| 1.0);
        assert_eq!(wrap4("一二三四五六"), ["一二三四", "五六"], "plain CJK breaks anywhere");
        assert_eq!(wrap4("一二三四；五"), ["一二三", "四；五"], "the ； takes the character before it down");
        assert_eq!(wrap4("一二三四。」五"), ["一二三", "四。」五"], "two closing marks go down together");
        assert_eq!(wrap4("一二三（四五"), ["一二三", "（四五"], "an opening mark goes down with what it opens");
        assert_eq!(wrap4("；；；；；"), ["；；；；；"], "a line that cannot break by the rules hangs its marks");
        for text in
            ["事项摘要：张*反映邻居李*在院墙处搭建雨棚，影响采光；请依法调处。", "（类别：邻里纠纷）、（抄送）。"]
        {
            for width in 2..12 {
                let lines = wrap_by(text, width as f32, |_| 1.0);
                assert_eq!(lines.concat(), text, "nothing lost at width {width}");
                for (i, line) in lines.iter().enumerate() {
                    let first = line.chars().next().unwrap();
                    let last = line.chars().last().unwrap();
                    assert!(!no_line_start(first) || i == 0, "width {width}: {lines:?}");
                    assert!(!no_line_end(last) || i + 1 == lines.len(), "width {width}: {lines:?}");
                }
            }
        }
    }
}
