// FINN top-level wrapper template of depth_to_space (hw/rtl/depth_to_space.v), filled by
// fpga_gan.ops DepthToSpace_rtl.generate_hdl: every $KEY$ is replaced and the text above the marker line
// is dropped. Not a Verilog file on its own. Stream interfaces use FINN's names (in<i>_V_*,
// out<i>_V_*, widths padded to whole bytes; padding bits of outputs are driven 0, of inputs
// ignored); the core keeps the verilog-axis names (s_axis_*, m_axis_*).
// ---- generated wrapper begins ----
`timescale 1ns / 1ps
`default_nettype none

module $TOP_MODULE_NAME$ (
    (* X_INTERFACE_PARAMETER = "ASSOCIATED_BUSIF $BUSIF$, ASSOCIATED_RESET ap_rst_n" *)
    (* X_INTERFACE_INFO = "xilinx.com:signal:clock:1.0 ap_clk CLK" *)
    input  wire ap_clk,
    (* X_INTERFACE_PARAMETER = "POLARITY ACTIVE_LOW" *)
    input  wire ap_rst_n,
$STREAM_PORTS$
);

$PAD_GLUE$
    depth_to_space #(
        .ELEM_BITS($ELEM_BITS$),
        .IMG_W($IMG_W$),
        .CHANNELS($CHANNELS$),
        .BLOCK($BLOCK$),
        .DCR($DCR$)
    ) impl (
        .ap_clk(ap_clk),
        .ap_rst_n(ap_rst_n),
        .s_axis_tdata($S_TDATA$),
        .s_axis_tvalid($S_TVALID$),
        .s_axis_tready($S_TREADY$),
        .m_axis_tdata($M_TDATA$),
        .m_axis_tvalid($M_TVALID$),
        .m_axis_tready($M_TREADY$)
    );

endmodule

`default_nettype wire
