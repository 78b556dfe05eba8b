// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Coalition loyalty points, per member id, earned and redeemed at partners.
interface ILoyaltyPoints {
    error LoyaltyNotPartner(address account);
    error LoyaltyInvalidMember();
    error LoyaltyZeroAmount();
    error LoyaltyLengthMismatch();
    error LoyaltyEmptyBatch();
    error LoyaltyInsufficientBalance(bytes32 member, uint256 balance, uint256 needed);
    error LoyaltyAmountAboveCap(uint256 amount, uint256 cap);
    error LoyaltySupplyCapExceeded(uint256 totalSupply, uint256 amount, uint256 cap);
    error LoyaltyConsentRequired(bytes32 member, address partner);
    error LoyaltySignatureRequired(bytes32 member);
    error LoyaltyNotHomePartner(bytes32 member, address home, address account);
    error LoyaltyNotRegistry(address account);
    error LoyaltyPeriodCapExceeded(address partner, uint256 issued, uint256 amount, uint256 cap);

    event PointsEarned(bytes32 indexed member, address indexed partner, uint256 amount, bytes32 ref);
    event PointsRedeemed(bytes32 indexed member, address indexed partner, uint256 amount, bytes32 ref);
    event PointsForfeited(bytes32 indexed member, uint256 amount);

    function earn(bytes32 member, uint256 amount, bytes32 ref) external;

    function redeem(bytes32 member, uint256 amount, bytes32 ref) external;

    function redeemSigned(
        bytes32 member,
        uint256 amount,
        bytes32 ref,
        uint256 deadline,
        bytes calldata signature
    ) external;

    function earnBatch(bytes32[] calldata members, uint256[] calldata amounts, bytes32[] calldata refs) external;

    function balanceOf(bytes32 member) external view returns (uint256);

    function issuedBy(address partner) external view returns (uint256);

    function redeemedAt(address partner) external view returns (uint256);

    function positionOf(address partner) external view returns (int256);
}
