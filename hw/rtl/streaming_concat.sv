// Channel concatenation of NUM_INPUTS NHWC streams of equal height and width.
//
// For every pixel, the block forwards CHANNELS_i/SIMD beats of input 0, then of input 1, and so on,
// so the output pixel carries the channels of all inputs in input order (numpy
// concatenate(axis=-1) on NHWC). Inputs not being read are held off with tready low; one output
// beat per cycle when the selected input and the output are ready; latency one cycle (registered
// output). All inputs share one element format (same datatype, SIMD elements per beat).
//
// Inputs are packed buses: input i uses s_axis_tdata[i*DW +: DW] (DW = SIMD*ELEM_BITS),
// s_axis_tvalid[i], s_axis_tready[i]. CHANNELS packs one 32-bit channel count per input, input 0
// in the lowest bits. Clock ap_clk, active-low synchronous reset ap_rst_n.
`timescale 1ns / 1ps
`default_nettype none

module streaming_concat #(
    // Bits per element (the FINN datatype's bitwidth); the core only moves bits.
    parameter integer ELEM_BITS = 8,
    // Elements per beat on every port; must divide every input's channel count.
    parameter integer SIMD = 1,
    // Number of input streams, >= 2.
    parameter integer NUM_INPUTS = 2,
    // Channels of each input, 32 bits per input, input 0 in bits [31:0]; each >= 1.
    parameter [NUM_INPUTS*32-1:0] CHANNELS = {NUM_INPUTS{32'd1}}
) (
    input  wire                               ap_clk,
    input  wire                               ap_rst_n,

    input  wire [NUM_INPUTS*SIMD*ELEM_BITS-1:0] s_axis_tdata,
    input  wire [NUM_INPUTS-1:0]              s_axis_tvalid,
    output wire [NUM_INPUTS-1:0]              s_axis_tready,

    output wire [SIMD*ELEM_BITS-1:0]          m_axis_tdata,
    output wire                               m_axis_tvalid,
    input  wire                               m_axis_tready
);

    localparam integer DW = SIMD * ELEM_BITS;

    // Largest number of beats per pixel of any input (sizes the fold counter).
    function automatic integer max_fold();
        integer i;
        begin
            max_fold = 1;
            for (i = 0; i < NUM_INPUTS; i = i + 1) begin
                if (SIMD > 0 && CHANNELS[i*32 +: 32] / SIMD > max_fold) begin
                    max_fold = CHANNELS[i*32 +: 32] / SIMD;
                end
            end
        end
    endfunction

    localparam integer MAXF = max_fold();
    localparam integer FW   = (MAXF > 1) ? $clog2(MAXF) : 1;
    localparam integer SW   = (NUM_INPUTS > 1) ? $clog2(NUM_INPUTS) : 1;
    localparam [SW-1:0] SEL_LAST = SW'(NUM_INPUTS - 1);

    // Elaboration-time parameter checks.
    genvar gi;
    generate
        if (ELEM_BITS < 1) begin : g_bad_elem_bits
            $fatal(1, "streaming_concat: ELEM_BITS must be >= 1 (got %0d)", ELEM_BITS);
        end
        if (SIMD < 1) begin : g_bad_simd
            $fatal(1, "streaming_concat: SIMD must be >= 1 (got %0d)", SIMD);
        end
        if (NUM_INPUTS < 2) begin : g_bad_inputs
            $fatal(1, "streaming_concat: NUM_INPUTS must be >= 2 (got %0d)", NUM_INPUTS);
        end
        for (gi = 0; gi < NUM_INPUTS; gi = gi + 1) begin : g_check
            if (CHANNELS[gi*32 +: 32] < 1) begin : g_bad_ch
                $fatal(1, "streaming_concat: CHANNELS of input %0d must be >= 1", gi);
            end
            if (SIMD >= 1 && CHANNELS[gi*32 +: 32] % SIMD != 0) begin : g_bad_fold
                $fatal(1, "streaming_concat: SIMD (%0d) must divide CHANNELS of input %0d (%0d)",
                       SIMD, gi, CHANNELS[gi*32 +: 32]);
            end
        end
    endgenerate

    // Last fold index of each input.
    wire [FW-1:0] fold_last [0:NUM_INPUTS-1];
    generate
        for (gi = 0; gi < NUM_INPUTS; gi = gi + 1) begin : g_last
            assign fold_last[gi] = FW'(CHANNELS[gi*32 +: 32] / SIMD - 1);
        end
    endgenerate

    reg [SW-1:0] sel;                // input currently forwarded
    reg [FW-1:0] fold;               // beat of the current input within this pixel
    reg [DW-1:0] data;
    reg          out_valid;

    wire          out_free  = !out_valid || m_axis_tready;
    wire          sel_valid = s_axis_tvalid[sel];
    wire [DW-1:0] sel_data  = s_axis_tdata[sel*DW +: DW];
    wire          in_fire   = sel_valid && out_free;

    generate
        for (gi = 0; gi < NUM_INPUTS; gi = gi + 1) begin : g_ready
            assign s_axis_tready[gi] = out_free && (sel == SW'(gi));
        end
    endgenerate

    assign m_axis_tdata  = data;
    assign m_axis_tvalid = out_valid;

    always @(posedge ap_clk) begin
        if (in_fire) data <= sel_data;
    end

    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            sel       <= {SW{1'b0}};
            fold      <= {FW{1'b0}};
            out_valid <= 1'b0;
        end else begin
            if (in_fire) begin
                out_valid <= 1'b1;
            end else if (m_axis_tready) begin
                out_valid <= 1'b0;
            end
            if (in_fire) begin
                if (fold != fold_last[sel]) begin
                    fold <= fold + 1'b1;
                end else begin
                    fold <= {FW{1'b0}};
                    sel  <= (sel == SEL_LAST) ? {SW{1'b0}} : sel + 1'b1;
                end
            end
        end
    end

endmodule

`default_nettype wire
