# Answers with the env: one `KEY=VALUE` line per key, sorted; references show their type, and
# psgi.version its items.
sub {
    my $env = shift;
    my @lines;
    for my $k (sort keys %$env) {
        my $v = $env->{$k};
        if (ref $v eq 'ARRAY') {
            $v = 'ARRAY:' . join(',', @$v);
        } elsif (ref $v) {
            $v = 'REF:' . ref $v;
        } elsif (!defined $v) {
            $v = 'UNDEF';
        }
        push @lines, "$k=$v\n";
    }
    push @lines, "ARGV=@ARGV\n", "CWD_ENV=" . ($ENV{LIEGE_TEST_ENV} // '') . "\n";
    return [200, ['Content-Type' => 'text/plain'], \@lines];
};
