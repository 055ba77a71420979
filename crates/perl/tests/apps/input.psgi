# Reads the body in the ways apps do, and answers with what each read gave, one per line:
# read(4), read with an offset, a read past the end, then seek(0) and read it all.
sub {
    my $env = shift;
    my $in = $env->{'psgi.input'};
    my @out;
    my $buf = '';
    my $n = $in->read($buf, 4);
    push @out, "read4=$n:$buf";
    $n = $in->read($buf, 3, 2);
    push @out, "offset2=$n:$buf";
    $buf = 'xy';
    $n = $in->read($buf, 2, 5);
    (my $shown = $buf) =~ s/\0/0/g;
    push @out, "pad5=$n:$shown";
    $n = $in->read($buf, 1000);
    push @out, "rest=$n:$buf";
    $n = $in->read($buf, 10);
    push @out, "eof=$n:" . length($buf);
    $in->seek(0, 0);
    $n = $in->read($buf, 1 << 20);
    push @out, "again=$n:$buf";
    $in->seek(-3, 2);
    $n = $in->read($buf, 10, -1);
    push @out, "tail=$n:$buf";
    return [200, ['Content-Type' => 'text/plain'], [join("\n", @out) . "\n"]];
};
