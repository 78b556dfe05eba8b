// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IConsortium} from "./interfaces/IConsortium.sol";
import {ILoyaltyPoints} from "./interfaces/ILoyaltyPoints.sol";

/// @title LoyaltyPoints
/// @notice Coalition points per member id (random bytes32, never derived from personal data).
/// Points are earned at one partner and may be redeemed at any other; there is deliberately no
/// transfer between members. Each partner's issued and redeemed totals give its net settlement
/// position against the coalition.
contract LoyaltyPoints is ILoyaltyPoints {
    IConsortium private immutable _consortium;

    mapping(bytes32 member => uint256) private _balances;
    mapping(address partner => uint256) private _issued;
    mapping(address partner => uint256) private _redeemed;
    uint256 private _totalSupply;

    constructor(address consortium_) {
        _consortium = IConsortium(consortium_);
    }

    modifier onlyPartner() {
        if (!_consortium.isPartner(msg.sender)) revert LoyaltyNotPartner(msg.sender);
        _;
    }

    /// @notice Credit `amount` points to `member`, issued by the calling partner.
    /// Requirements:
    /// - the caller is a current partner; `member` is not zero; `amount` is not zero.
    function earn(bytes32 member, uint256 amount, bytes32 ref) external onlyPartner {
        _earn(member, amount, ref);
    }

    /// @notice `earn` for many members in one transaction (imports, nightly runs).
    /// Requirements:
    /// - as `earn` for every item; the three arrays have the same, non-zero length.
    function earnBatch(
        bytes32[] calldata members,
        uint256[] calldata amounts,
        bytes32[] calldata refs
    ) external onlyPartner {
        _checkBatch(members.length, amounts.length, refs.length);
        for (uint256 i = 0; i < members.length; ++i) {
            _earn(members[i], amounts[i], refs[i]);
        }
    }

    /// @notice Debit `amount` points from `member`, redeemed at the calling partner.
    /// Requirements:
    /// - the caller is a current partner; `member` is not zero; `amount` is not zero and at most the balance.
    function redeem(bytes32 member, uint256 amount, bytes32 ref) external onlyPartner {
        _redeem(member, amount, ref);
    }

    /// @notice `redeem` for many members in one transaction; all or nothing.
    /// Requirements:
    /// - as `redeem` for every item; the three arrays have the same, non-zero length.
    function redeemBatch(
        bytes32[] calldata members,
        uint256[] calldata amounts,
        bytes32[] calldata refs
    ) external onlyPartner {
        _checkBatch(members.length, amounts.length, refs.length);
        for (uint256 i = 0; i < members.length; ++i) {
            _redeem(members[i], amounts[i], refs[i]);
        }
    }

    function balanceOf(bytes32 member) external view returns (uint256) {
        return _balances[member];
    }

    function issuedBy(address partner) external view returns (uint256) {
        return _issued[partner];
    }

    function redeemedAt(address partner) external view returns (uint256) {
        return _redeemed[partner];
    }

    /// @notice Points redeemed at `partner` minus points issued by it: positive means the coalition
    /// owes the partner (it honoured others' points), negative means the partner owes the coalition.
    function positionOf(address partner) external view returns (int256) {
        return SafeCast.toInt256(_redeemed[partner]) - SafeCast.toInt256(_issued[partner]);
    }

    function totalSupply() external view returns (uint256) {
        return _totalSupply;
    }

    function consortium() external view returns (address) {
        return address(_consortium);
    }

    function _earn(bytes32 member, uint256 amount, bytes32 ref) private {
        if (member == bytes32(0)) revert LoyaltyInvalidMember();
        if (amount == 0) revert LoyaltyZeroAmount();
        _balances[member] += amount;
        _issued[msg.sender] += amount;
        _totalSupply += amount;
        emit PointsEarned(member, msg.sender, amount, ref);
    }

    function _redeem(bytes32 member, uint256 amount, bytes32 ref) private {
        if (member == bytes32(0)) revert LoyaltyInvalidMember();
        if (amount == 0) revert LoyaltyZeroAmount();
        uint256 balance = _balances[member];
        if (balance < amount) revert LoyaltyInsufficientBalance(member, balance, amount);
        // Cannot underflow: checked against the balance just above, and every balance is part of
        // the total supply.
        unchecked {
            _balances[member] = balance - amount;
            _totalSupply -= amount;
        }
        _redeemed[msg.sender] += amount;
        emit PointsRedeemed(member, msg.sender, amount, ref);
    }

    function _checkBatch(uint256 members, uint256 amounts, uint256 refs) private pure {
        if (members == 0) revert LoyaltyEmptyBatch();
        if (members != amounts || members != refs) revert LoyaltyLengthMismatch();
    }
}
